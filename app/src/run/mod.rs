//! `strata run`: each project's sources backed up once into its primary repository, copied
//! to the others, thinned by each repository's retention, maintained when due, recorded
//! and notified.
