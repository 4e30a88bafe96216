-- Responses API: responses created with store (the default) are kept here, so GET/DELETE /v1/responses/{id} and
-- previous_response_id chains work whatever provider answered. Users reach only their own rows (RLS).

create table public.responses (
  id text primary key,
  user_id uuid not null references public.users (id) on delete cascade,
  previous_response_id text,
  -- the conversation up to and including this response's output, as chat messages: what a follow-up continues
  conversation jsonb not null,
  -- the Response object as it was returned
  response jsonb not null,
  created_at timestamptz not null default now()
);
create index responses_user on public.responses (user_id, created_at);

alter table public.responses enable row level security;

create policy "Users can view own responses" on public.responses
  for select to authenticated using (auth.uid() = user_id);
create policy "Users can store own responses" on public.responses
  for insert to authenticated with check (auth.uid() = user_id);
create policy "Users can delete own responses" on public.responses
  for delete to authenticated using (auth.uid() = user_id);

revoke all on public.responses from anon, authenticated;
grant select, insert, delete on public.responses to authenticated;
grant all on public.responses to service_role;
