mod discovery;
mod jwks;
mod multi_node;
mod rotation;
