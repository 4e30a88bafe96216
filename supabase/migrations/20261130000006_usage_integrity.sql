-- Usage integrity. The server's own request id keys usage rows and their outbox rows (so a client cannot merge or
-- suppress rows by reusing an x-request-id); the client's id is kept beside it for tracing. A usage record that
-- PostgreSQL refuses even after the batch is split down to that one row is kept in usage_dead_letters with the
-- reason, instead of blocking the other tenants' rows.

alter table public.usage_logs add column client_request_id text;
create index usage_logs_client_request_idx on public.usage_logs (client_request_id) where client_request_id is not null;

create table public.usage_dead_letters (
  id bigint generated always as identity primary key,
  request_id text not null,
  -- erasing the user erases their dead letters too (they hold the exchange's text)
  user_id uuid references public.users (id) on delete cascade,
  reason text not null,
  -- the record as JSON text (escapes intact): text, not jsonb, so what jsonb refused can still be kept
  record text not null,
  created_at timestamptz not null default now()
);
create index usage_dead_letters_user on public.usage_dead_letters (user_id);

-- Operators only: a policy that admits no user keeps it that way explicitly.
alter table public.usage_dead_letters enable row level security;
create policy "No user access to dead letters" on public.usage_dead_letters
  for select to authenticated using (false);
revoke all on public.usage_dead_letters from anon, authenticated;
grant all on public.usage_dead_letters to service_role;
