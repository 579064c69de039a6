mod concurrency;
mod lifetimes;
mod properties;
mod reuse;
mod rotation;
mod users;
