fn main() -> std::process::ExitCode {
    // Initialise OpenSSL (used by libpq for TLS to PostgreSQL) before any thread can use it, so
    // its exit-time clean-up is ordered after every connection thread.
    openssl_sys::init();
    lineage::cli::run()
}
