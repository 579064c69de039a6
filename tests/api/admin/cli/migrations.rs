//! `lineage migrate`, both ways, on both databases.

use super::*;

cli_both_backends!(migrations_revert_and_reapply);

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Tables and indexes the migrations created (diesel's bookkeeping table excluded).
fn schema_objects(database: &TestDatabase) -> Vec<String> {
    let rows: Vec<Name> = match database.url() {
        lineage::db::DatabaseUrl::Sqlite { path } => {
            let mut c = SqliteConnection::establish(&path).expect("open sqlite");
            diesel::sql_query(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') \
                 AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__diesel%'",
            )
            .load(&mut c)
            .expect("list sqlite objects")
        }
        lineage::db::DatabaseUrl::Postgres { url } => {
            let mut c = PgConnection::establish(&url).expect("open postgres");
            diesel::sql_query(
                "SELECT relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i') \
                 AND relname NOT LIKE '\\_\\_diesel%'",
            )
            .load(&mut c)
            .expect("list postgres objects")
        }
    };
    let mut names: Vec<String> = rows.into_iter().map(|r| r.name).collect();
    names.sort();
    names
}

fn migrations_revert_and_reapply(backend: Backend) {
    let Some(cli) = Cli::new(backend) else {
        return;
    };
    let out = cli.run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let applied: Vec<String> = stdout(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("applied ").map(str::to_string))
        .collect();
    assert!(
        !applied.is_empty(),
        "a fresh database gets migrations: {}",
        stdout(&out)
    );
    let full_schema = schema_objects(&cli.database);
    assert!(
        full_schema.contains(&"clients".to_string()),
        "{full_schema:?}"
    );

    let again = cli.run(&["migrate"]);
    assert!(again.status.success());
    assert!(stdout(&again).contains("up to date"), "{}", stdout(&again));

    // Every down.sql runs, newest first, and leaves nothing behind.
    for version in applied.iter().rev() {
        let out = cli.run(&["migrate", "--revert"]);
        assert!(
            out.status.success(),
            "reverting {version}: {}",
            stderr(&out)
        );
        assert_eq!(stdout(&out).trim(), format!("reverted {version}"));
    }
    assert_eq!(schema_objects(&cli.database), Vec::<String>::new());
    assert_clear_failure(&cli.run(&["migrate", "--revert"]), "revert");

    let out = cli.run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reapplied: Vec<String> = stdout(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("applied ").map(str::to_string))
        .collect();
    assert_eq!(reapplied, applied);
    assert_eq!(schema_objects(&cli.database), full_schema);
    cli.json(&["client", "create", "--name", "x", "--scope", "a", "--json"]);
}
