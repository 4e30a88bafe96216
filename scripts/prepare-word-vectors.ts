// Converts the built-in embedder's word vectors into their binary cache once (npm test runs this before Jest, so
// parallel test workers do not each parse the package's 300 MB JSON).
import { ensureWordVectorCache } from "../src/memory";

console.log(`[services] word vectors ready: ${ensureWordVectorCache()}`);
