/** Names the conversation of a chat request: the x-perpetual-conversation-id header, else the body's metadata. */
export const CONVERSATION_HEADER = "x-perpetual-conversation-id";
/** What a conversation id may be: 1-200 letters, digits or `_.:-`. */
export const CONVERSATION_ID = /^[\w.:-]{1,200}$/;

/** The conversation an exchange belongs to: the x-perpetual-conversation-id header, else `metadata.conversation_id`. */
export function conversationIdOf(header: string | undefined, body?: unknown): string | null {
  const metadata = (body as { metadata?: { conversation_id?: unknown } } | null)?.metadata;
  const value = header ?? (typeof metadata?.conversation_id === "string" ? metadata.conversation_id : undefined);
  return value && CONVERSATION_ID.test(value) ? value : null;
}
