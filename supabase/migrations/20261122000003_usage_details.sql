-- Per-request detail the proxy records, and running totals on the user row (kept in step by the usage writer).

alter table public.usage_logs
  add column stream boolean not null default false,
  add column time_to_first_token_ms integer,
  add column conversation_id text,
  -- true when the provider reported no usage and tokens were estimated with a tokenizer
  add column usage_estimated boolean not null default false,
  -- true when the model has no price in config/models.json (cost_usd is then 0)
  add column cost_unknown boolean not null default false,
  add column error_code text;

alter table public.users
  add column total_requests bigint not null default 0,
  add column total_tokens bigint not null default 0;
