/// Where a request came from (the client's address as `limits::client_ip` decides it, and the
/// user agent), recorded on families and in audit events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}
