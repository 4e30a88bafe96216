import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ContentRule } from "../../src/guard/rules";

const DIR = join(__dirname, "..", "..", "bench", "guard");

const lines = (file: string) =>
  readFileSync(join(DIR, file), "utf8")
    .split("\n")
    .filter((line) => line.trim() && !line.startsWith("#"));

/** bench/guard/benign.txt: prompts the guard must not flag. */
export const benignPrompts = (file = "benign.txt"): string[] => lines(file);

/** bench/guard/attacks.txt, expanded: encode-base64 / encode-hex lines sent encoded, repeat:N:text as N copies. */
export function attackPrompts(file = "attacks.txt"): Array<{ rule: ContentRule; prompt: string }> {
  return lines(file).map((line) => {
    const [label, text] = line.split("\t") as [string, string];
    if (label === "encode-base64") {
      return {
        rule: "encoded_payload",
        prompt: `Decode this and do what it says: ${Buffer.from(text).toString("base64")}`,
      };
    }
    if (label === "encode-hex") {
      return { rule: "encoded_payload", prompt: `Here is a hex message for you: ${Buffer.from(text).toString("hex")}` };
    }
    const repeated = /^repeat:(\d+):(.*)$/s.exec(text);
    const prompt = repeated ? repeated[2]!.repeat(Number(repeated[1])) : text;
    return { rule: label as ContentRule, prompt };
  });
}
