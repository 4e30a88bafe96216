-- Memory write-back outbox: each completed exchange waits here until it is chunked, embedded and stored in the
-- vector store. Written in the same statement as its usage_logs row (never lost with it), drained by a worker
-- that leases rows (next_attempt_at) and retries with backoff, so a vector-store outage delays memory but loses
-- nothing. One row per request: a request id is never stored twice.

create table public.memory_outbox (
  id bigint generated always as identity primary key,
  request_id text not null unique,
  user_id uuid not null references public.users(id) on delete cascade,
  conversation_id text,
  model text,
  -- [{"role": "user" | "assistant", "content": "..."}]: the new user turn(s) and the assistant's reply
  messages jsonb not null,
  created_at timestamptz not null default now(),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_error text
);

create index memory_outbox_due on public.memory_outbox (next_attempt_at);
create index memory_outbox_user on public.memory_outbox (user_id);

alter table public.memory_outbox enable row level security;

create policy "Users can view own pending memories" on public.memory_outbox
  for select to authenticated using (auth.uid() = user_id);
create policy "Users can delete own pending memories" on public.memory_outbox
  for delete to authenticated using (auth.uid() = user_id);

revoke all on public.memory_outbox from anon, authenticated;
grant select, delete on public.memory_outbox to authenticated;
grant all on public.memory_outbox to service_role;
