-- Billing with Polar: subscriptions that set a user's tier, processed webhook ids, the usage-event outbox, and the
-- spend a user's monthly cap and prepaid balance are checked against (kept in step by the usage writer).

alter table public.users
  -- The tier a paid subscription grants; while set (and until subscription_tier_until, when the subscription ends
  -- at the end of its period) it takes the place of `tier`, which stays the operator's base tier.
  add column subscription_tier text,
  add column subscription_tier_until timestamptz,
  -- Cost of this calendar month (UTC) so far; spend_month says which month the sum belongs to.
  add column month_spend_usd numeric(16, 8) not null default 0,
  add column spend_month date;

-- One row per Polar subscription, as of the newest state we were told about (polar_modified_at): webhooks arrive
-- at least once and in any order, so an older state never overwrites a newer one.
create table public.billing_subscriptions (
  id text primary key,
  user_id uuid not null references public.users (id) on delete cascade,
  product_id text not null,
  status text not null,
  cancel_at_period_end boolean not null default false,
  current_period_end timestamptz,
  ends_at timestamptz,
  ended_at timestamptz,
  polar_modified_at timestamptz not null,
  updated_at timestamptz not null default now()
);
create index billing_subscriptions_user_idx on public.billing_subscriptions (user_id);

-- Webhook deliveries already applied (Standard Webhooks `webhook-id`): a redelivery is acknowledged, not reapplied.
create table public.billing_webhook_events (
  webhook_id text primary key,
  type text not null,
  -- applied | ignored (an event type or customer we do not act on)
  outcome text not null,
  received_at timestamptz not null default now()
);

-- Usage events waiting to be sent to Polar, written in the same statement as their usage_logs row. No foreign key
-- to users: usage of an account erased in the meantime is still billed (the row holds only ids and counts).
create table public.billing_outbox (
  id bigint generated always as identity primary key,
  request_id text not null unique,
  user_id uuid not null,
  provider text,
  model text not null,
  prompt_tokens integer not null,
  cached_tokens integer not null,
  completion_tokens integer not null,
  cost_usd numeric(16, 8) not null,
  created_at timestamptz not null,
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_error text
);
create index billing_outbox_due on public.billing_outbox (next_attempt_at);

alter table public.billing_subscriptions enable row level security;
alter table public.billing_webhook_events enable row level security;
alter table public.billing_outbox enable row level security;

create policy "Users can view own subscriptions" on public.billing_subscriptions
  for select to authenticated using (auth.uid() = user_id);
create policy "Users can view own pending usage events" on public.billing_outbox
  for select to authenticated using (auth.uid() = user_id);
-- Only the server reads webhook ids; a policy that admits no user keeps it that way explicitly.
create policy "No user access to webhook ids" on public.billing_webhook_events
  for select to authenticated using (false);

revoke all on public.billing_subscriptions, public.billing_webhook_events, public.billing_outbox
  from anon, authenticated;
grant select on public.billing_subscriptions, public.billing_outbox to authenticated;
grant all on public.billing_subscriptions, public.billing_webhook_events, public.billing_outbox to service_role;
