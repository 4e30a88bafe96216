import { write } from "node:fs";

/** Writes the whole buffer at the file's position (append mode: its end), however many writes that takes. */
export function writeAll(fd: number, buffer: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const from = (offset: number) =>
      write(fd, buffer, offset, buffer.length - offset, null, (error, written) => {
        if (error) reject(error);
        else if (offset + written < buffer.length) from(offset + written);
        else resolve();
      });
    from(0);
  });
}
