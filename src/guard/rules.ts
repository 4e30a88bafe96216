/**
 * The abuse and prompt-injection guard's content rules: pure functions over the text a caller sent. Each rule is
 * written against a labelled set (bench/guard: benign prompts in everyday styles and attacks) and keeps its false
 * positives there at or under 1 %; `npm run bench:guard` reports each rule's recall.
 */

export type ContentRule = "injection" | "encoded_payload" | "secret_exfiltration" | "repetition";

/** How much of a request's text the rules read: its end (where a conversation's latest turns are). */
const SCANNED_CHARS = 20_000;

const INJECTION: RegExp[] = [
  // "ignore / disregard / forget (all) (your|the) previous|prior|above|earlier instructions|rules|prompt|directions"
  // (Not reported speech: "my boss told me to ignore the previous instructions from HR".)
  /(?<!\b(told|asked|wants?|said\s+to)\s+(me|us|him|her|them)\s+to\s+)\b(ignore|disregard|forget|override|bypass|skip|set\s+aside|drop|discard|abandon|stop\s+following|throw\s+out)\b[^.!?\n]{0,40}?\b(previous|prior|above|earlier|preceding|initial|original|all (the|your)|your|prev)\b[^.!?\n]{0,30}?\b(instructions?|rules|guidelines|directions|directives|prompts?|constraints|programming|policies|restrictions|training|safeguards)\b/i,
  // Instructions declared void, or the model declared free of them.
  /\b(your|the|all|any)\s+(previous\s+|prior\s+|earlier\s+)?(guidelines|rules|restrictions|instructions|policies|safeguards)\s+(no\s+longer\s+apply|(are|is|have\s+been)\s+(void|revoked|lifted|suspended|cancell?ed|disabled|removed))/i,
  /\b(freed|released|liberated|unshackled)\s+from\s+(your|all|its|any|the)\s+(\w+\s+)?(restrictions|rules|guidelines|limits|programming|filters)/i,
  /\b(your|the)\s+(actual|real|true)\s+instructions\s+(are|say)\b/i,
  /\b(AI|assistant|model|chatbot)\b[^.!?\n]{0,40}\b(never|doesn'?t|does\s+not|won'?t)\s+refuse/i,
  /\b(ignore|disregard|forget)\s+(everything|anything|all)\s+(you\s+(were|have\s+been)\s+told|before|above|previously)/i,
  /\b(ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,20}\b(your|the|its)\s+(system\s+prompt|safety\s+(guidelines|rules|filters?)|content\s+polic(y|ies)|filters)\b/i,
  /\b(you\s+are\s+(now|no\s+longer)|from\s+now\s+on,?\s+you\s+(are|will|must))\b[^.!?\n]{0,60}\b(DAN|jailbr[eo]ak\w*|unrestricted|unfiltered|uncensored|no\s+(rules|restrictions|guidelines|limits)|free\s+(of|from)\s+(all\s+)?(rules|restrictions))/i,
  /\bdo\s+anything\s+now\b/i,
  /\b(developer|maintenance|god|jailbreak)\s+mode\b[^.!?\n]{0,40}\b(enabled|activated|ignore|no\s+(content\s+)?polic|without)/i,
  /\b(model|AI|assistant|chatbot)\s+(that\s+is\s+)?(free\s+(of|from)|without)\s+(all\s+|any\s+)?(rules|restrictions|guidelines|limits|filters)\b/i,
  /\binstruction\s+override\b/i,
  /\b(enable|enter|activate)\s+(developer|maintenance|god|jailbreak)\s+mode\b/i,
  /\b(act|behave|respond|answer)\s+as\s+(an?\s+)?(AI|assistant|chatbot|model)?\s*(without|with\s+no)\s+(any\s+)?(ethical\s+)?(rules|restrictions|guidelines|filters|limits)/i,
  /\bact\s+as\s+an?\s+(unfiltered|uncensored|unrestricted|jailbroken)\b/i,
  /\bpretend\s+(that\s+)?(you\s+have|there\s+are)\s+no\s+(rules|restrictions|guidelines|limits|filters)/i,
  /\b(reveal|print|show|output|repeat|display|leak|dump|list)\b[^.!?\n]{0,30}\b(your|the)\s+(full\s+|entire\s+|whole\s+)?(system\s+(prompt|message)|initial\s+(instructions|prompt)|hidden\s+(instructions|prompt|rules)|original\s+(prompt|instructions)|secret\s+(instructions|rules)|prompt\s+verbatim)/i,
  /\b(repeat|print)\s+(the\s+)?(text|words)\s+above\b/i,
  /\bwhat\s+were\s+your\s+(initial|original|first|hidden)\s+instructions\b/i,
  /\b(print|output|reveal)\s+(the\s+)?first\s+\d+\s+words\s+of\s+your\s+prompt\b/i,
  /\b(new|real|updated)\s+(instructions|directive|policy)\s*(:|supersedes|are:)/i,
  /\b(content\s+policy|safety\s+(filters?|guidelines))\s+(has|have)\s+been\s+(disabled|removed|lifted)/i,
  /\bevil\s+AI\s+that\s+ignores\b/i,
  /^\s*(\[|\(|<)?\s*system\s*(\]|\)|>)?\s*:\s*.{0,80}\b(revoked|obey|no\s+limits|new\s+policy|may\s+now\s+share)/im,
];

const EXFILTRATION: RegExp[] = [
  // The assistant's or the server's own secrets, not how to handle secrets in general.
  /\b(your|this\s+(server|system|proxy|deployment)'?s?|the\s+(server|system|proxy|deployment)'?s?)\s+(own\s+)?([\w']+\s+)?(api[\s_-]?keys?|secret\s+keys?|secrets|credentials|access\s+tokens?|private\s+keys?|master\s+key|passwords?|jwt\s+secret)\b/i,
  // Listing secrets or the environment of the server or the assistant itself ("your", "the server"), not a container's.
  /\b(show|print|list|dump|reveal|display|output|give|tell|paste|send|extract|leak)\b(?=[^.!?\n]{0,80}\b(your|you|server|this\s+(system|machine|host|proxy)|other\s+users)\b)[^.!?\n]{0,40}\b(environment\s+variables|env\s+vars|secret\s+keys|credentials\s+and\s+tokens|api\s+keys?\s+(present|stored|you)|stored\s+(provider\s+)?keys|your\s+config)\b/i,
  /\b(other\s+users'?|another\s+user'?s)\s+(api[\s_-]?keys?|keys|credentials|conversations|passwords?)\b/i,
  /\b(contents?\s+of|cat|type|read)\s+(the\s+|your\s+)?(\S*[/\\])?(\.env\b|etc\/(passwd|shadow)|\.aws[/\\]credentials|\.ssh[/\\]id_\w+|id_rsa)/i,
  /\b(printenv|os\.environ|process\.env\.[A-Z_]*(KEY|SECRET|TOKEN|PASSWORD)|echo\s+\$[A-Z_]*(KEY|SECRET|TOKEN|PASSWORD))\b/i,
  /\bprint\s+os\.environ\b|\bos\.environ\s+in\s+full\b/i,
  /\b(value\s+of|[Ww]hat'?s|[Ww]hat\s+is)\s+(the\s+)?(environment\s+variable\s+)?[A-Z][A-Z0-9_]*_(KEY|SECRET|TOKEN|PASSWORD|URL)\b/,
  /\b(credentials|api\s+keys?|secrets?|passwords?|tokens?)\s+(that\s+)?you\s+(have\s+access\s+to|have|use|know|can\s+access)\b/i,
  /\b(tokens?|keys?|credentials|secrets?|passwords?)\s+(does|do)\s+(this|the|your)\s+(proxy|server|system|service|deployment)\s+use\b/i,
  /\b(keys?|tokens?|credentials|secrets?|passwords?)\s+(this|the|your)\s+(proxy|server|system|service|deployment)\s+uses?\b/i,
  /\b(secret|key|token|password|credentials)\s+(do|did)\s+you\s+use\b/i,
  /\bpassword\s+for\s+the\s+(admin|root)\s+account\b/i,
  /\b(admin|root)\s+password\s+(for|of)\s+(this|the)\s+(system|service|server)\b/i,
  /\b(tell|give|show)\s+me\s+the\s+(admin|root)\s+password\b/i,
];

/** A run of one word (or character) repeated this many times in a row is runaway repetition. */
const REPEATED_RUN = 50;
const REPETITION_ASKS =
  /\b(repeat|say|write|type|print|keep\s+repeating)\b[^.!?\n]{0,40}\b(forever|infinitely|endlessly|indefinitely|over\s+and\s+over|without\s+stopping|never\s+stop|until\s+you\s+run\s+out|(a\s+)?(million|billion|thousand)\s+times|\d{4,}\s+times)/i;

/** Base64 and hex blocks long enough to carry a sentence. */
const BASE64_BLOCK = /(?:[A-Za-z0-9+/]{4}){10,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?/g;
const HEX_BLOCK = /\b(?:[0-9a-fA-F]{2}){20,}\b/g;

/** The content rules that match `text` (each rule once). */
export function contentRulesMatching(text: string): ContentRule[] {
  const scanned = text.length > SCANNED_CHARS ? text.slice(-SCANNED_CHARS) : text;
  const found: ContentRule[] = [];
  if (INJECTION.some((r) => r.test(scanned))) found.push("injection");
  if (EXFILTRATION.some((r) => r.test(scanned))) found.push("secret_exfiltration");
  if (REPETITION_ASKS.test(scanned) || hasRepeatedRun(scanned)) found.push("repetition");
  if (hasEncodedInstructions(scanned)) found.push("encoded_payload");
  return found;
}

/** The same token (word, or a single character) many times in a row. */
function hasRepeatedRun(text: string): boolean {
  if (/(.)\1{499,}/s.test(text)) return true;
  let previous = "";
  let run = 0;
  for (const match of text.matchAll(/\S+/g)) {
    const word = match[0].toLowerCase();
    run = word === previous ? run + 1 : 1;
    previous = word;
    if (run >= REPEATED_RUN) return true;
  }
  // Short phrases repeated ("ignore this ignore this ..."): the same two-word pair back to back.
  const words = text.toLowerCase().match(/\S+/g) ?? [];
  let pairs = 0;
  for (let i = 2; i < words.length; i++) {
    pairs = words[i] === words[i - 2] ? pairs + 1 : 0;
    if (pairs >= 2 * REPEATED_RUN) return true;
  }
  return false;
}

/** A base64 or hex block that decodes to readable text carrying instructions or secret requests. */
function hasEncodedInstructions(text: string): boolean {
  const decoded: string[] = [];
  for (const block of text.match(BASE64_BLOCK) ?? []) decoded.push(Buffer.from(block, "base64").toString("utf8"));
  for (const block of text.match(HEX_BLOCK) ?? []) decoded.push(Buffer.from(block, "hex").toString("utf8"));
  return decoded.some((plain) => {
    // Binary (a hash, a key, a token's signature) decodes to unreadable bytes: not a payload.
    const printable = plain.replace(/[^\x20-\x7e\s]/g, "").length / Math.max(1, plain.length);
    if (printable < 0.95 || !/[a-z]{3,}\s+[a-z]{2,}/i.test(plain)) return false;
    return (
      INJECTION.some((r) => r.test(plain)) ||
      EXFILTRATION.some((r) => r.test(plain)) ||
      /\b(ignore|disregard|reveal|override|bypass|pretend|forget)\b.{0,60}\b(instructions|rules|prompt|restrictions|guidelines|secret|keys?|password)/i.test(
        plain,
      ) ||
      /\b(you\s+are\s+(now\s+)?DAN|DAN,?\s+free|no\s+content\s+policy|api\s+key|environment\s+variable|\/etc\/passwd|secret\s+keys?)\b/i.test(
        plain,
      )
    );
  });
}
