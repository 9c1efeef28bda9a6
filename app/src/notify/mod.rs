//! Notifications: email, Slack, signed webhooks and dead-man pings, retried, recorded,
//! never failing the run that sends them.
