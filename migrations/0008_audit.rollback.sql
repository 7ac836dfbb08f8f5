-- The audit trail is kept for its retention period: refuse to drop it.
do $keep$
begin
  if exists (select from audit.platform_actions) or exists (select from audit.security_events) then
    raise exception 'rollback of 0008_audit refused: the audit trail holds records'
      using errcode = '55000', hint = 'Archive audit.* , empty the tables as their owner, then roll back.';
  end if;
end
$keep$;
drop schema if exists audit cascade;
