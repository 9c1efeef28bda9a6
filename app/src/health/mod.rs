//! `strata health`: per project and repository, whether backups are recent, of a plausible
//! size, copied, tested and checked, with room left — as Nagios reads it.
