export { VpfError, KernelError, Errno, strerror, errnoName } from "./errors.js";
export type { ErrnoName } from "./errors.js";
export { VirtualClock, NS_PER_US, NS_PER_MS, NS_PER_S } from "./clock.js";
export type { Clock, TimerHandle } from "./clock.js";
export { SeededRandom } from "./random.js";
