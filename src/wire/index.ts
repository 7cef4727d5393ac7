export { WireError } from "./errors.js";
export type { WireErrorCode } from "./errors.js";
export { MacAddress, macKeyAt, writeMacKey, macKeyIsMulticast } from "./mac.js";
export {
  EtherType,
  isVlanTpid,
  vlanTag,
  checkVlanTag,
  tciOf,
  tagFromTci,
  MAX_VLAN_TAGS,
  EthernetFrame,
  EthernetRepr,
  pushVlanTag,
  popVlanTag,
  outerVlanTag,
} from "./ethernet.js";
export type { VlanTag } from "./ethernet.js";
