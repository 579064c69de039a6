mod feed;
mod feed_auth;
mod feed_order;
mod feed_poller;
mod revoke_introspect;
