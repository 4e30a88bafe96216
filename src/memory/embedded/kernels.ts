import { KERNELS_WASM } from "./kernels-wasm";

/** The part of the WebAssembly API used here (Node's global; TypeScript declares it only with the DOM library). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}
const { Module, Instance } = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

/** The SIMD kernels of kernels.wat; all offsets are byte offsets into the instance's own memory. */
export interface Kernels {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
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

/** Compiled once per thread; each caller gets its own instance, so its own memory. */
const KERNELS = new Module(Buffer.from(KERNELS_WASM, "base64"));
export const instantiateKernels = () => new Instance(KERNELS).exports as Kernels;

const WASM_PAGE = 65_536;

/** Grows the instance's memory to at least `bytes` (views over the old buffer are then detached). */
export function reserve(kernels: Kernels, bytes: number): void {
  const pages = Math.ceil(bytes / WASM_PAGE) - kernels.memory.buffer.byteLength / WASM_PAGE;
  if (pages > 0) kernels.memory.grow(pages);
}
