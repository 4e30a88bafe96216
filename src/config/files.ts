import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { z } from "zod";

/** Reads and validates one non-secret data file from config/. Problems name the file and the field. */
export function readJsonConfig<T>(
  configDir: string,
  file: string,
  schema: z.ZodType<T>,
): { data?: T; problems: string[] } {
  const path = join(configDir, file);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    return { problems: [`${path}: cannot be read as JSON (${(error as Error).message})`] };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    return {
      problems: parsed.error.issues.map((issue) => `${path}: ${issue.path.join(".") || "(root)"}: ${issue.message}`),
    };
  }
  return { data: parsed.data, problems: [] };
}
