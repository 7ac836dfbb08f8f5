drop table if exists usage.live_counts;
alter table catalog.meters drop constraint if exists meters_aggregation_known;
alter table catalog.meters drop constraint if exists meters_aggregation_length;
alter table catalog.meters drop column if exists aggregation;
drop schema if exists app cascade;
