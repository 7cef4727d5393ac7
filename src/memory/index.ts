export { GuestMemory, GuestMemoryError, MAX_REGION_BYTES } from "./guest-memory.js";
export type { MemoryRegionSpec } from "./guest-memory.js";
export { GuestAllocator } from "./allocator.js";
