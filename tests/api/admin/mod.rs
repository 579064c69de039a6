mod backup;
mod cli;
mod cli_families;
mod gc;
