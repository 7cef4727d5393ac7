import { execFileSync } from "node:child_process";

/**
 * Runs the real `tshark` (Wireshark's CLI, Debian package tshark) over a pcap file and returns
 * one record per frame, field name → text as `-T fields` prints it (first occurrence; "" when
 * absent). IP, UDP and TCP checksum validation is switched on, so every `*.checksum.status`
 * field reads "1" (Good), "0" (Bad) or "2" (Unverified). This is a test oracle shared by the
 * layers that write pcap (wire, nic taps, world): the independent real tool checks our bytes.
 * When tshark is not installed the call throws (ENOENT), so a test using it fails, never skips.
 */
export function tsharkFields(file: string, fields: readonly string[]): Record<string, string>[] {
  const args = ["-r", file, "-n", "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"];
  for (const f of fields) args.push("-e", f);
  const out = execFileSync("tshark", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024 });
  return out
    .split("\n")
    .filter((l) => l.length > 0)
    .map((line) => {
      const cols = line.split("\t");
      const rec: Record<string, string> = {};
      fields.forEach((f, i) => (rec[f] = cols[i] ?? ""));
      return rec;
    });
}

/** Checksum status fields tshark reports (1 Good, 0 Bad, 2 Unverified). */
export const TSHARK_CHECKSUM_FIELDS = ["ip.checksum.status", "udp.checksum.status", "tcp.checksum.status", "icmp.checksum.status", "icmpv6.checksum.status"] as const;
