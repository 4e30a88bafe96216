import type { SqlExecutor } from "../db";

export interface UsageLine {
  date: string;
  model: string;
  requests: number;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  totalTokens: number;
  costUsd: number;
}

/**
 * A user's usage per UTC day and model between two dates (inclusive). Run it as the user (asUser): row-level
 * security is what keeps it to their own rows; the user filter only lets the index do the work.
 */
export async function usageByDayAndModel(
  tx: SqlExecutor,
  userId: string,
  from: string,
  to: string,
): Promise<UsageLine[]> {
  const rows = await tx.query<{
    date: string;
    model: string;
    requests: number;
    prompt: string;
    cached: string;
    completion: string;
    total: string;
    cost: number;
  }>(
    `select to_char((created_at at time zone 'utc')::date, 'YYYY-MM-DD') as date, model, count(*)::int as requests,
            sum(prompt_tokens)::int8 as prompt, sum(cached_tokens)::int8 as cached,
            sum(completion_tokens)::int8 as completion, sum(total_tokens)::int8 as total,
            sum(cost_usd)::float8 as cost
       from usage_logs
      where user_id = $1 and created_at >= ($2::date)::timestamp at time zone 'utc'
        and created_at < ($3::date + 1)::timestamp at time zone 'utc'
      group by 1, 2 order by 1, 2`,
    [userId, from, to],
  );
  return rows.map((r) => ({
    date: r.date,
    model: r.model,
    requests: r.requests,
    promptTokens: Number(r.prompt),
    cachedTokens: Number(r.cached),
    completionTokens: Number(r.completion),
    totalTokens: Number(r.total),
    costUsd: Math.round(Number(r.cost) * 1e8) / 1e8,
  }));
}
