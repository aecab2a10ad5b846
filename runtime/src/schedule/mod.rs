//! Schedule arithmetic: when a schedule is due next, in its time zone.
