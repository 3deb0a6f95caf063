//! Native public preview: the VPS-side ingress that routes by Host, the local preview client that holds an
//! outbound authenticated reverse channel, and the preview auth policy both sides check.
