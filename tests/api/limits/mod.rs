mod client_auth;
mod password_hashing;
mod sign_in;
mod trusted_proxies;
