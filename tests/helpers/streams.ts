import type OpenAI from "openai";

/** Streams a chat answer to one user message with the official SDK and returns its text, as the chunks spell it. */
export async function streamedText(client: OpenAI, model: string, content: string): Promise<string> {
  const chunks = await client.chat.completions.create({ model, messages: [{ role: "user", content }], stream: true });
  let text = "";
  for await (const chunk of chunks) text += chunk.choices[0]?.delta.content ?? "";
  return text;
}
