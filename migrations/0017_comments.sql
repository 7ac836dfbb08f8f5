-- 0017 comments: the column comments a reader of the schema (or of
-- `tenantdb docs`) needs — status columns and their values, keys, money in
-- minor units, jsonb shapes, timestamps that mean something specific,
-- flags — and table and column comments that say what a thing is rather
-- than which design document it came from. Comments only: no table, no
-- data, no privilege changes. A column tagged @personal keeps the tag
-- (verify reads it). The rollback restores the comments of 0016.
-- (The optional views of change 0016 are commented in its own functions
-- file, so that this change does not depend on it.)

-- identity ----------------------------------------------------------------------
comment on column identity.users.id is 'The auth user''s id (auth.users.id); the profile is deleted with the auth user.';
comment on column identity.users.profile_completed is 'Set by the user (their app) when the profile is filled in; informational, nothing depends on it.';
comment on column identity.users.onboarding_completed is 'true once complete_onboarding ran; stamped with onboarding_completed_at (users_onboarding_stamped).';
comment on column identity.users.onboarding_completed_at is 'When the user finished onboarding (complete_onboarding); null until then.';
comment on column identity.reserved_usernames.name is 'A user name nobody may take, lower-case (compared with lower(username)).';
{% if target == 'postgres' %}
comment on column identity.sessions.expires_at is 'When the session stops being valid; the auth library refuses it after this.';
comment on column identity.accounts.scope is 'OAuth scopes granted by the provider (space-separated), as the provider returned them.';
comment on column identity.accounts.expires_at is 'When the provider access token expires; null for credentials and tokens without expiry.';
comment on column identity.verifications.purpose is 'What the code is for: email_verification, password_reset, magic_link or mfa.';
comment on column identity.verifications.expires_at is 'When the code stops being accepted.';
{% endif %}

-- tenancy -----------------------------------------------------------------------
comment on column tenancy.organizations.org_type is 'personal (the workspace made at signup, is_personal), business, family, education or other; only personal has a meaning to the database.';
comment on column tenancy.organizations.settings is '@personal The application''s settings of the organization: a JSON object of its own keys (the database reads none). Personal data for a personal workspace.';
comment on column tenancy.organizations.metadata is '@personal Free-form JSON object the application attaches to the organization (the database reads none). Personal data for a personal workspace.';
comment on column tenancy.memberships.role_key is 'The member''s tenant role (iam.roles.key, is_system false): its permissions are what the member may do here.';
comment on column tenancy.memberships.status is 'active, or suspended: a suspended membership carries no permission (the member sees and changes nothing) until it is active again.';
comment on column tenancy.memberships.invited_by is 'The user who invited the member (from the accepted invitation); null for a creator-owner, or once that account is deleted.';
comment on column tenancy.invitations.role_key is 'The tenant role the invitee gets on acceptance.';
comment on column tenancy.invitations.role_is_system is 'Always false; with invitations_role_fk it admits only tenant roles.';
comment on column tenancy.invitations.expires_at is 'The invitation cannot be accepted after this (default: 7 days after it was made).';
comment on column tenancy.invitations.accepted_at is 'When the invitee accepted (and became a member); null while pending. An invitation is accepted or revoked, never both.';
comment on column tenancy.invitations.accepted_by is 'The user who accepted; null while pending, or once that account is deleted (accepted_at stays).';
comment on column tenancy.invitations.revoked_at is 'When the invitation was withdrawn (by revoked_by); null unless revoked.';

-- iam -----------------------------------------------------------------------------
comment on column iam.roles.key is 'The role''s stable key (tenant_owner, platform_support, ...): memberships, invitations and grants name it.';
comment on column iam.permissions.key is 'The permission''s key, <area>.<action> (tenant.read, billing.view, platform.tenant.read, ...): policies and functions name it.';
comment on column iam.system_role_grants.role_key is 'The platform role granted (iam.roles.key, is_system true).';
comment on column iam.system_role_grants.granted_at is 'When the grant was made; it confers the role from then until expires_at or revoked_at.';
comment on column iam.system_role_grants.revoked_at is 'When the grant was revoked (with revoked_by and revoke_reason); null while it stands. A revoked grant confers nothing.';

-- catalog ---------------------------------------------------------------------------
comment on table catalog.meters is 'What usage is measured in (api_call, projects, ...): record_usage takes a meter key, an alias or a feature key. aggregation says how a period''s usage is counted: summed events, or the highest live count.';
comment on column catalog.meters.key is 'The meter''s key: usage events, counters and features name it.';
comment on column catalog.meters.unit is 'What one unit of quantity is (call, project, GB, ...); for display.';
comment on table catalog.meter_aliases is 'Other names a meter answers to in record_usage (an older client''s name, such as api_calls for api_call). An alias may not be a meter or feature key: the alias_not_a_key trigger refuses it.';
comment on column catalog.features.key is 'The feature''s key: plans grant it (plan_features) and check_feature_access takes it (max_api_calls_per_month, sso, ...).';
comment on column catalog.features.kind is 'limit: a number of units per period (limit_value in each plan), measured by meter_key or by counts; flags: a JSON object of booleans per plan.';
comment on column catalog.features.meter_key is 'The meter whose usage a limit counts; null for flags and for limits that count something else (counts).';
comment on column catalog.plans.key is 'The plan''s key (free, pro, ...): subscriptions and plan_features name it.';
comment on column catalog.plans.id is 'Stable uuid of the plan, for callers that refer to plans by id (subscription_history.old_plan_id, new_plan_id).';
comment on column catalog.plans.currency is 'ISO 4217 code of price_minor and of the plan''s overage prices.';
comment on column catalog.plans.billing_interval is 'How often price_minor is charged: month or year.';
comment on column catalog.plans.is_active is 'false: no longer offered (left out of a re-seeded catalog); existing subscriptions keep it.';
comment on column catalog.plans.is_custom is 'A plan made for one customer: not on the public pricing page (anon does not see it).';
comment on column catalog.plan_features.feature_kind is 'Copy of features.kind, kept equal by the foreign key: lets plan_features_limit_shape be a CHECK.';
comment on column catalog.plan_features.flags is 'For a flags feature: a JSON object of booleans ({"sso": true, "api_access": false, ...}); null for a limit.';
comment on column catalog.limits.key is 'What is capped, <table>.<per what> (organizations.per_user_per_day, ...): the enforcing trigger looks it up.';
comment on column catalog.limits.value is 'The cap; reaching it refuses the next row (54000). The service role may change it with an UPDATE.';

-- billing ---------------------------------------------------------------------------
comment on column billing.settings.time_zone is 'IANA time zone (Europe/Berlin, ...) whose midnight starts the organization''s billing periods.';
comment on column billing.payment_customers.provider is 'The payment provider (stripe, polar, dodo, ...), lower-case.';
comment on column billing.payment_customers.provider_customer_id is 'The organization''s customer id at that provider.';
comment on column billing.subscriptions.plan_key is 'The plan in force now; a scheduled downgrade waits in pending_plan_key.';
comment on column billing.subscriptions.status is 'trialing (until trial_end), active, past_due (a payment failed), unpaid or canceled (stamped canceled_at). Moves: trialing -> active | past_due | canceled; active -> past_due | canceled; past_due -> active | unpaid | canceled; unpaid -> active | canceled; canceled is final.';
comment on column billing.subscriptions.seats is 'Seats the payment provider bills, from its subscription.updated events; the seats limit itself counts active memberships of type member.';
comment on column billing.subscriptions.provider is 'The payment provider that bills this subscription (set with provider_subscription_id); null for one no provider bills, such as the free plan made at signup.';
comment on column billing.subscriptions.provider_subscription_id is 'The subscription''s id at the provider; set together with provider.';
comment on column billing.subscriptions.current_period_start is 'Start of the current billing period.';
comment on column billing.subscriptions.current_period_end is 'End of the current billing period (exclusive): renewal, a scheduled downgrade or a cancellation at period end happens then.';
comment on column billing.subscriptions.trial_end is 'When the trial ends; required while status is trialing.';
comment on column billing.subscriptions.cancel_at_period_end is 'true: the subscription is canceled at current_period_end instead of renewing.';
comment on column billing.subscriptions.canceled_at is 'When the subscription was canceled; set exactly when status is canceled.';
comment on column billing.subscription_history.subscription_id is 'The subscription changed, if known.';
comment on column billing.subscription_history.old_status is 'The subscription''s status before the change (see billing.subscriptions.status); null when created.';
comment on column billing.subscription_history.new_status is 'The subscription''s status after the change.';
comment on column billing.subscription_history.change_type is 'What happened: created, upgrade, downgrade, downgrade_scheduled, cancelled, reactivated, trial_started, trial_ended, status_changed or renewed.';
comment on column billing.subscription_history.provider_event_id is 'The payment provider''s event that caused the change (its webhook event id); null for changes made in the database.';
comment on column billing.subscription_history.amount_paid_minor is 'What was paid for the change, in minor units of the plan''s currency, as reported; null when not reported.';
comment on column billing.subscription_history.effective_date is 'The day the change takes effect.';
comment on column billing.subscription_history.old_plan_id is 'catalog.plans.id of old_plan_key; kept in step with the key by a trigger.';
comment on column billing.subscription_history.stripe_subscription_id is 'The payment provider''s subscription id at the time of the change (any provider, despite the name).';
comment on column billing.one_off_payments.provider_payment_id is 'The payment''s id at the provider; a payment is recorded once per (organization, provider, id).';
comment on column billing.one_off_payments.amount_minor is 'Amount in minor units of currency (cents for USD), > 0.';
comment on column billing.one_off_payments.status is 'pending, succeeded (stamped succeeded_at; a top-up posts its credits once), failed, or refunded (a refunded top-up takes back what is left of its credits).';
comment on column billing.one_off_payments.reason is 'topup (buys credits: posted to credit_ledger when it succeeds) or addon (a one-off purchase).';
comment on column billing.one_off_payments.succeeded_at is 'When the provider confirmed the payment; set exactly when status is succeeded or refunded.';
comment on column billing.one_off_payments.metadata is 'What the caller attached to the payment: a JSON object (plan, billing period, provider ids, ...). Not personal data: do not put names or addresses here.';
comment on column billing.credit_ledger.amount_minor is 'Minor units of currency: positive grants credit, negative spends it; never 0.';
comment on column billing.credit_ledger.source is 'Where the entry comes from: topup (a paid top-up), admin (platform staff), promo, proration (an upgrade''s unused part), invoice (credit applied to an invoice) or refund (a refunded top-up taken back).';
comment on column billing.credit_ledger.reason is 'Why, in words, for the statement the customer reads.';
comment on column billing.credit_ledger.reference is 'JSON object naming what the entry belongs to (one_off_payment_id, invoice_id, ...), as the poster set it.';
comment on column billing.credit_balances.balance_minor is 'Sum of the ledger''s amount_minor for the organization and currency; never negative.';
comment on column billing.payment_events.provider is 'The payment provider that sent the webhook.';
comment on column billing.payment_events.provider_event_id is 'The provider''s event id: a redelivered webhook is stored once.';
comment on column billing.payment_events.event_type is 'The event''s type: subscription.updated, payment.succeeded, payment.failed and payment.refunded are applied; other types are skipped.';
comment on column billing.payment_events.payload is 'The event as received: a JSON object, up to 1 MB.';
comment on column billing.payment_events.occurred_at is 'When the event happened at the provider: events older than a subscription''s last_event_at do not overwrite it.';
comment on column billing.payment_events.received_at is 'When the webhook was stored.';
comment on column billing.payment_event_processing.status is 'pending (not tried yet), processing (claimed by a worker until locked_until), processed, failed (retried until 10 attempts), skipped (nothing to do).';
comment on column billing.payment_event_processing.attempts is 'How many times a worker claimed the event.';
comment on column billing.payment_event_processing.locked_until is 'A worker''s claim lasts until then; after it another worker may take the event.';
comment on column billing.payment_event_processing.last_error is 'The error of the latest failed attempt.';
comment on column billing.payment_event_processing.processed_at is 'When the event was processed or skipped; set exactly then.';
comment on column billing.payment_event_attempts.attempt is 'The attempt''s number, from 1.';
comment on column billing.payment_event_attempts.worker is 'The name of the worker that made the attempt.';
comment on column billing.payment_event_attempts.started_at is 'When the worker claimed the event.';
comment on column billing.payment_event_attempts.outcome is 'processed, failed (with error) or skipped.';
comment on column billing.invoices.period_start is 'First day of the billing period invoiced.';
comment on column billing.invoices.period_end is 'First day after the period (exclusive).';
comment on column billing.invoices.currency is 'ISO 4217 code of every line and of total_minor.';
comment on column billing.invoices.status is 'draft (lines may change), open (finalized: total frozen, awaiting payment), paid, void, or uncollectible.';
comment on column billing.invoices.provider_invoice_id is 'The invoice''s id at the payment provider, once sent there.';
comment on column billing.invoices.finalized_at is 'When the invoice left draft and its total was stamped.';
comment on column billing.invoices.paid_at is 'When the invoice was paid.';
comment on column billing.invoices.voided_at is 'When the invoice was voided.';
comment on column billing.invoice_lines.line_no is 'Position of the line on the invoice, from 1.';
comment on column billing.invoice_lines.kind is 'subscription (the plan for the period), usage (overage fees), proration (an upgrade''s charge), credit (negative: credit applied) or adjustment (either sign).';
comment on column billing.invoice_lines.unit_amount_minor is 'Price of one unit in minor units of the invoice''s currency (negative for credit).';
comment on column billing.invoice_lines.amount_minor is 'quantity x unit_amount_minor (invoice_lines_amount_is_product).';
comment on column billing.invoice_lines.feature_key is 'For a usage line: the feature whose overage it bills.';
comment on column billing.connected_accounts.provider_account_id is 'The connected account''s id at the provider (acct_... for Stripe Connect).';
comment on column billing.connected_accounts.status is 'pending (onboarding), active (takes payments; application fees apply), restricted (the provider limits it) or disabled.';
comment on column billing.platform_revenue.source_payment_id is 'The payment''s id at the provider: recorded once per organization, provider and payment.';
comment on column billing.platform_revenue.gross_amount_minor is 'The payment''s amount in minor units of currency.';
comment on column billing.platform_revenue.application_fee_minor is 'The platform''s fee on it, in minor units (at most the gross amount).';
comment on column billing.platform_revenue.occurred_at is 'When the payment was made (the revenue summaries group by its UTC month).';

-- usage -------------------------------------------------------------------------------
comment on column usage.events.quantity is 'Units of the meter the event adds (> 0, at most the meter''s max_per_event).';
comment on column usage.events.occurred_at is 'When the usage happened, as the caller says (default: now); picks the monthly partition and the billing period.';
comment on column usage.events.recorded_at is 'When the database stored the event.';
comment on column usage.events.metadata is 'The caller''s JSON object about the event (endpoint, usage_type, ...); the database reads none of it.';
comment on column usage.idempotency_keys.idempotency_key is 'The caller''s key of an accepted usage event; accepted once per organization, forever.';
comment on column usage.idempotency_keys.event_id is 'The usage event recorded under the key.';
comment on column usage.idempotency_keys.occurred_at is 'occurred_at of that event: finds it in its monthly partition.';
comment on column usage.counters.quantity is 'Units recorded in this slot for the meter and period (the total is the sum of the slots).';
comment on column usage.counters.event_count is 'Events recorded in this slot for the meter and period.';
comment on column usage.live_counts.quantity is 'How many of the counted things the organization has now (projects, ...).';
comment on column usage.rollups.period_type is 'daily or monthly: the length of the UTC bucket that starts at period_start.';
comment on column usage.rollups.period_start is 'First day of the bucket (UTC).';
comment on column usage.rollups.quantity is 'Units of the meter in the bucket.';
comment on column usage.rollups.event_count is 'Events of the meter in the bucket.';
comment on column usage.monthly_summaries.period_start is 'First day of the organization''s billing period.';
comment on column usage.monthly_summaries.period_end is 'First day after the period (exclusive).';
comment on column usage.monthly_summaries.plan_key is 'The plan the period''s usage was measured against.';
comment on column usage.monthly_summaries.units_used is 'Units of the feature used in the period (count meters: the highest live count).';
comment on column usage.monthly_summaries.limit_value is 'The plan''s included units for the feature in that period; -1 = unlimited.';
comment on column usage.overage_fees.period_start is 'First day of the billing period the overage was used in (billed on the next period''s invoice).';
comment on column usage.overage_fees.units_over is 'Units used beyond the plan''s limit (> 0).';
comment on column usage.overage_fees.unit_price_minor is 'The plan''s overage price per unit, in minor units of currency.';
comment on column usage.overage_fees.amount_minor is 'units_over x unit_price_minor (overage_fees_amount_is_product).';
comment on table usage.overage_fees is 'Units over the plan''s included units times the plan''s overage unit price, per billing period; billed by generate_invoice.';
comment on table usage.organization_usage is 'A snapshot of an organization''s usage against its limits for one billing period (record_organization_usage).';
comment on column usage.organization_usage.period_start is 'First day of the billing period.';
comment on column usage.organization_usage.period_end is 'The last day of the billing period (inclusive, e.g. 2025-11-30); queries use [period_start, period_end + 1).';
comment on column usage.organization_usage.plan_key is 'The plan the period was measured against.';
comment on column usage.organization_usage.usage is 'Units used per limited feature: a JSON object {feature_key: units}.';
comment on column usage.organization_usage.seats_count is 'Active paid seats (memberships of type member) when the snapshot was taken.';
comment on column usage.organization_usage.has_exceeded_limits is 'true when exceeded_limits_details is not empty.';

-- audit -------------------------------------------------------------------------------
comment on column audit.impersonation_sessions.reason is 'Why the user is impersonated (a support ticket, ...), at least 5 characters.';
comment on column audit.impersonation_sessions.started_at is 'When the session started.';
comment on column audit.impersonation_sessions.expires_at is 'When the session ends at the latest (at most 4 hours after it started); it may end earlier (impersonation_endings).';
comment on column audit.impersonation_endings.ended_at is 'When the session was ended.';
comment on column audit.impersonation_endings.ended_by is 'The user who ended it (a user id, kept after the account is deleted).';
comment on column audit.break_glass_events.user_id is 'The platform member who activated the grant (a user id, kept after the account is deleted).';
comment on column audit.break_glass_events.reason is 'Why, at least 10 characters.';
comment on column audit.break_glass_events.activated_at is 'When the emergency role was activated.';
comment on column audit.break_glass_events.expires_at is 'When the activation ends (at most 4 hours after it).';
comment on column audit.platform_actions.occurred_at is 'When the action happened (clock_timestamp() of the change).';
comment on column audit.platform_actions.action is 'What was done: <what>.<operation> (billing.subscription.update, iam.system_role_grant.insert, ...).';
comment on column audit.platform_actions.impersonation_session_id is 'The impersonation session the action was made in, if any.';
comment on column audit.platform_actions.target_table is 'The table changed, schema-qualified.';
comment on column audit.platform_actions.target_id is 'The changed row''s key as text (its id, key, session_id or user_id).';
comment on column audit.platform_actions.target_organization_id is 'The organization the changed row belongs to, if any.';
comment on column audit.platform_actions.details is '@personal The changed row: {"old": ..., "new": ...} (old absent on insert, new on delete); may hold names and emails.';
comment on column audit.security_events.occurred_at is 'When the event happened.';
comment on column audit.security_events.event_type is 'What happened, dotted (impersonation.refused, break_glass.activated, iam.system_role_granted, ...).';
comment on column audit.security_events.severity is 'info, low, medium, high or critical.';
comment on column audit.security_events.actor_id is 'auth.uid() of the request that caused the event (not a foreign key: audit outlives users).';
comment on column audit.security_events.subject_user_id is 'The user the event is about, if any (not a foreign key).';
comment on column audit.security_events.details is '@personal A JSON object about the event (its reason, the ids involved); may hold personal data.';
comment on column audit.security_events.ip is '@personal Client address of the request, as for platform_actions.ip.';
comment on column audit.security_events.user_agent is '@personal From request.headers user-agent, as the client claims it.';
comment on column audit.security_events.request_id is 'From request.headers x-request-id, as the client (or proxy) sent it.';
comment on column audit.incidents.opened_at is 'When the incident was opened.';
comment on column audit.incidents.opened_by is 'The platform member who opened it (a user id, kept after the account is deleted).';
comment on column audit.incidents.severity is 'low, medium, high or critical.';
comment on column audit.incident_updates.seq is 'Position in the incident''s timeline, from 1.';
comment on column audit.incident_updates.at is 'When the update was made.';
comment on column audit.incident_updates.status is 'The incident''s status from this update on: open, investigating, mitigated, resolved or closed (only forward).';
comment on column audit.incident_updates.by_user is 'The platform member who wrote it (a user id, kept after the account is deleted).';

-- privacy -----------------------------------------------------------------------------
comment on column privacy.consents.purpose is 'What the consent is for (newsletter, analytics, ...): a lower-case key.';
comment on column privacy.consents.status is 'granted or withdrawn: the latest row per user and purpose is the current state.';
comment on column privacy.consents.legal_basis is 'GDPR Art. 6 basis: consent, contract, legal_obligation, vital_interests, public_task or legitimate_interests.';
comment on column privacy.consents.policy_version is 'The version of the privacy policy or consent text the user saw.';
comment on column privacy.consents.occurred_at is 'When the user gave or withdrew consent.';
comment on column privacy.subject_requests.request_type is 'The right exercised: access (Art. 15), rectification (16), erasure (17), restriction (18), portability (20) or objection (21).';
comment on column privacy.subject_requests.status is 'received, verified (identity checked), in_progress, completed or rejected; only moves forward; completed and rejected are stamped completed_at.';
comment on column privacy.subject_requests.received_at is 'When the request was received: the 30 days run from here.';
comment on column privacy.subject_requests.due_at is 'When the answer is due, at most 30 days after received_at.';
comment on column privacy.subject_requests.completed_at is 'When the request was completed or rejected.';
comment on column privacy.subject_requests.handled_by is 'The platform member who last advanced it (a user id).';
comment on column privacy.data_inventory.category is 'Kind of personal data: name, contact, address, identifier, credential, network, profile, ...';
comment on column privacy.data_inventory.purpose is 'Why it is held (GDPR Art. 30).';
comment on column privacy.data_inventory.legal_basis is 'GDPR Art. 6 basis of holding it: consent, contract, legal_obligation, vital_interests, public_task or legitimate_interests.';
comment on column privacy.data_inventory.retention is 'How long it is kept, in words (account lifetime, 2 years, ...).';
comment on column privacy.data_inventory.subject_match is 'What subject_column holds: user_id, email, person_id (a CRM person) or org_client_id.';
comment on column privacy.erasures.user_id is 'The erased user (not a foreign key: the record outlives the account).';
comment on column privacy.erasures.erased_at is 'When the erasure ran.';
comment on column privacy.erasures.erased_by is 'Who ran it (auth.uid(): the user themself or a platform member; null for the back end).';
comment on column privacy.erasures.columns_erased is 'How many column values were overwritten.';
comment on column privacy.erasures.rows_deleted is 'How many rows were deleted.';
comment on column privacy.person_erasures.person_id is 'The erased CRM person (not a foreign key: the record outlives the person).';
comment on column privacy.person_erasures.erased_at is 'When the erasure ran.';
comment on column privacy.person_erasures.erased_by is 'Who ran it (a user id; null for the back end).';
comment on column privacy.person_erasures.columns_erased is 'How many column values were overwritten.';
comment on column privacy.person_erasures.rows_deleted is 'How many rows were deleted.';

-- crm -----------------------------------------------------------------------------------
comment on column crm.person_emails.is_primary is 'The person''s primary email (at most one), copied to people.primary_email.';
comment on column crm.person_phones.is_primary is 'The person''s primary phone (at most one), copied to people.primary_phone_e164.';
comment on table crm.marketing_consents is 'Email and SMS opt-ins and opt-outs of a person, with history: one append-only row per decision. For an organization, the person''s own opt-out wins; otherwise the latest decision of the person or that organization counts (source default: the not-opted-in rows upsert_person writes). Campaigns send only to people opted in for them.';
comment on column crm.marketing_consents.channel is 'email or sms.';
comment on column crm.marketing_consents.opted_in is 'true: the person agreed to marketing on the channel; false: opted out (or not asked yet, source default).';
comment on column crm.marketing_consents.source is 'Who decided: person (the person themself), organization (an organization recording the person''s answer) or default (the initial not-opted-in row).';
comment on column crm.marketing_consents.occurred_at is 'When the decision was made: the latest one counts.';
comment on table crm.user_person_links is 'A signed-up user linked to the person with the same verified email: the user sees that person''s record and may correct it.';
comment on column crm.user_person_links.linked_via is 'signup (the email was verified at signup) or email_confirmed (when the user confirmed it later).';
comment on column crm.user_person_links.linked_at is 'When the link was made.';
comment on column crm.org_clients.status is 'lead (not a customer yet), active or inactive; set by the organization.';
comment on column crm.org_clients.tags is 'The organization''s own labels on the client (at most 50); campaigns may segment on them.';
comment on column crm.org_clients.default_address_id is 'The person''s address jobs go to by default (one of that person''s addresses).';
comment on column crm.org_client_settings.pricing_tier is 'The organization''s own price category for the client (free text).';
comment on column crm.services.default_price_cents is 'Price of the service in minor units of currency; a job starts from it.';
comment on column crm.services.currency is 'ISO 4217 code of default_price_cents.';
comment on column crm.services.active is 'false: no longer offered; the jobs and invoice lines that name it keep it.';
comment on column crm.jobs.address_id is 'Where the job takes place: one of the client''s person''s addresses (jobs_address_of_client).';
comment on column crm.jobs.start_at is 'When the job starts; reminders go out 24 h and 2 h before while it is scheduled.';
comment on column crm.jobs.end_at is 'When the job ends (after start_at), if known.';
comment on column crm.jobs.status is 'scheduled, in_progress, completed, canceled or blocked. Moves: scheduled -> in_progress | canceled | blocked; in_progress -> completed | canceled | blocked; blocked -> scheduled | in_progress | canceled.';
comment on column crm.invoices.currency is 'ISO 4217: the client''s currency (org_clients.currency), of every line and payment.';
comment on column crm.invoices.status is 'draft (lines may change), open (issued: awaiting payment), paid (succeeded payments reached the total) or void. Moves: draft -> open | void; open -> paid | void.';
comment on column crm.invoices.due_date is 'When payment is due; required once open. Reminders go out 2 days before and on the day.';
comment on column crm.invoices.issued_at is 'When the invoice left draft; null exactly while draft.';
comment on column crm.invoices.paid_at is 'When succeeded payments reached the total; set exactly when status is paid.';
comment on column crm.invoice_lines.unit_price_cents is 'Price of one unit in minor units of the invoice''s currency.';
comment on column crm.invoice_lines.amount_cents is 'quantity x unit_price_cents, computed (generated column).';
comment on column crm.invoice_lines.job_id is 'The job the line bills, if any.';
comment on column crm.invoice_lines.service_id is 'The service the line bills, if any.';
comment on column crm.payments.amount_cents is 'Amount in minor units of currency, > 0; pending and succeeded payments never exceed the invoice''s total.';
comment on column crm.payments.status is 'pending, succeeded (counts towards the client''s lifetime value; stamped captured_at), failed, or refunded (stamped refunded_at). Moves: pending -> succeeded | failed; succeeded -> refunded.';
comment on column crm.payments.method is 'How the client paid (card, cash, check, ...), free text.';
comment on column crm.payments.provider_payment_id is 'The payment''s id at the payment provider, if any: recorded once per organization.';
comment on column crm.payments.captured_at is 'When the money was received; set exactly when status is succeeded or refunded.';
comment on column crm.payments.refunded_at is 'When the payment was refunded; set exactly when status is refunded.';
comment on column crm.campaigns.channel is 'email or sms: also the consent the recipients need.';
comment on column crm.campaigns.template is 'The message as the sending worker expects it (a JSON object: subject, body, ...); handed out by claim_campaign_sends.';
comment on column crm.campaigns.status is 'draft (being written), queued (queue_campaign_sends made its sends; they go out from scheduled_at) or canceled. Moves: draft -> queued | canceled; queued -> canceled.';
comment on column crm.campaigns.scheduled_at is 'Sends are not handed out before this; null: as soon as queued.';
comment on column crm.campaign_sends.status is 'queued (waiting for, or claimed by, a sending worker), sent (stamped sent_at) or failed (with error; also when the person opted out meanwhile).';
comment on column crm.campaign_sends.attempts is 'How many times a worker claimed the send.';
comment on column crm.campaign_sends.claimed_by is 'The worker that claimed it last.';
comment on column crm.campaign_sends.lease_until is 'A claim expires then: a worker that died does not keep its sends.';
comment on column crm.campaign_sends.sent_at is 'When the worker reported it sent; set exactly when status is sent.';
comment on column crm.reminders.type is 'job_upcoming (about job_id) or invoice_due (about invoice_id).';
comment on column crm.reminders.slot is 'Which reminder of its subject: job_24h, job_2h (job_upcoming), invoice_2d or invoice_due_day (invoice_due).';
comment on column crm.reminders.send_at is 'When it is due to go out (follows the job''s start or the invoice''s due date).';
comment on column crm.reminders.payload is 'What the message is about: {"job_id", "start_at"} or {"invoice_id", "due_date", "total_cents", "currency"}.';
comment on column crm.reminders.status is 'pending (waiting, or claimed by a worker), sent (stamped sent_at), failed (with error) or canceled (the job is no longer scheduled, or the invoice no longer open).';
comment on column crm.reminders.attempts is 'How many times a worker claimed the reminder.';
comment on column crm.reminders.claimed_by is 'The worker that claimed it last.';
comment on column crm.reminders.sent_at is 'When the worker reported it sent; set exactly when status is sent.';

-- app -----------------------------------------------------------------------------------
comment on table app.projects is 'The reference tenant resource, to copy for an application''s own tables: created with project.create, edited with project.update, deleted with project.delete; counted against the plan''s max_projects at commit and metered once each (meter projects).';
