mod client_auth;
mod client_credentials;
mod code_exchange;
mod cors;
mod errors;
mod oauth2_client;
