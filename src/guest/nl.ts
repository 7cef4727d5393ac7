/**
 * The few netlink names guest.test.ts reads replies with, kept so that test stays as it was.
 * There is no codec here any more: the guest's endpoint and its `ip` client use src/wire.
 */
import { u32le } from "../wire/bytes.js";
import { NLMSG_HDRLEN, NlMsgType, NlmF, parseNlMessagesPrefix, type NlMessage } from "../wire/netlink.js";

export const NLMSG_ERROR = NlMsgType.ERROR;
export const NLMSG_DONE = NlMsgType.DONE;
export const NLM_F_MULTI = NlmF.MULTI;
export const NLM_F_CAPPED = NlmF.CAPPED;

/** src/wire's lenient split, each message with its bytes (`raw`, header included) alongside. */
export function splitMessages(buf: Uint8Array): (NlMessage & { readonly raw: Uint8Array })[] {
  return parseNlMessagesPrefix(buf).map((m) => ({ ...m, raw: new Uint8Array(m.payload.buffer, m.payload.byteOffset - NLMSG_HDRLEN, NLMSG_HDRLEN + m.payload.length) }));
}

export function readI32At(b: Uint8Array, o: number): number {
  return u32le(b, o) | 0;
}
