//! `homeboy tunnel` on the local side: managed services (a supervised process group with logs and
//! readiness), the static artifact origin, and the preview consumer.
