import { KERNELS_WASM, SHARED_KERNELS_WASM } from "./kernels-wasm";

/** The part of the WebAssembly API used here (Node's global; TypeScript declares it only with the DOM library). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports?: object) => { exports: unknown };
  Memory: new (descriptor: { initial: number; maximum: number; shared: true }) => SharedMemory;
}
const { Module, Instance, Memory } = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

/** A WebAssembly memory that threads share (posted to a worker, it is the same memory there). */
export interface SharedMemory {
  buffer: SharedArrayBuffer;
  grow(pages: number): number;
}

/** The SIMD kernels of kernels.wat; all offsets are byte offsets into the instance's own memory. */
export interface Kernels {
  memory: { buffer: ArrayBufferLike; grow(pages: number): number };
  hamming(
    codes: number,
    count: number,
    stride: number,
    query: number,
    alive: number,
    dead: number,
    out: number,
    histogram: number,
  ): void;
  select(distances: number, count: number, cutoff: number, atCutoff: number, out: number): number;
  dots(vectors: number, width: number, slots: number, count: number, query: number, out: number): void;
  dots16(table: number, width: number, rows: number, count: number, query: number, queries: number, out: number): void;
}

/** Compiled once per thread (on first use); each caller gets its own instance, so its own memory. */
let kernels: object | undefined;
export function instantiateKernels(): Kernels {
  kernels ??= new Module(Buffer.from(KERNELS_WASM, "base64"));
  return new Instance(kernels).exports as Kernels;
}

let sharedKernels: object | undefined;
/** The kernels over a shared memory (each thread instantiates its own over the same memory). */
export function instantiateSharedKernels(memory: SharedMemory): Kernels {
  sharedKernels ??= new Module(Buffer.from(SHARED_KERNELS_WASM, "base64"));
  return new Instance(sharedKernels, { env: { memory } }).exports as Kernels;
}

export const WASM_PAGE = 65_536;

/** A memory to share between threads, of `bytes` and growable up to `maximumBytes`. */
export const sharedMemory = (bytes: number, maximumBytes: number): SharedMemory =>
  new Memory({
    initial: Math.ceil(bytes / WASM_PAGE),
    maximum: Math.ceil(maximumBytes / WASM_PAGE),
    shared: true,
  });

/** Grows the instance's memory to at least `bytes` (views over the old buffer are then detached). */
export function reserve(kernels: Kernels, bytes: number): void {
  const pages = Math.ceil(bytes / WASM_PAGE) - kernels.memory.buffer.byteLength / WASM_PAGE;
  if (pages > 0) kernels.memory.grow(pages);
}
