-- Rollback of 0022 seats: the seat gate's triggers and functions (from
-- functions/0022_seats.sql) are dropped by tenantdb after this file; the
-- recorded seat peaks go with their table.
drop table usage.seat_peaks;
