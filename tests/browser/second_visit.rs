//! The second half of the real-browser walk: a second sign-in through the one-click
//! confirmation, "Remove access", and forms whose submission ends in a redirect to another
//! origin, which Chromium checks against the page's CSP `form-action`.

use std::time::Duration;

use fantoccini::{Client, Locator};

use super::{
    DEMO_PASSWORD, ELSEWHERE_NATIVE, ELSEWHERE_WEB, Server, WAIT, click, page_text, screenshot,
    screenshot_named, wait_for, wait_for_text,
};

/// A second sign-in: the demo app is public, so a one-click confirmation rather than a silent
/// code. Then "Remove access" on /account, after which the demo app has to ask for consent again.
pub async fn sign_in_again_and_remove_access(browser: &Client, issuer: &str) -> Result<(), String> {
    browser
        .goto(&format!("{issuer}/demo/start"))
        .await
        .map_err(|e| e.to_string())?;
    wait_for(
        browser,
        "form[action='/consent'] button[name=decision][value=allow]",
    )
    .await;
    let text = page_text(browser).await;
    if !text.contains("Continue to Demo notes app as demo") {
        return Err(format!("expected the confirmation page: {text}"));
    }
    if browser
        .find(Locator::Css("input[name=device_name]"))
        .await
        .is_ok()
    {
        return Err("the consent page again instead of the confirmation".into());
    }
    screenshot(browser, "confirm.png").await;
    click(browser, "button[name=decision][value=allow]").await?;
    wait_for(browser, "form[action='/demo/refresh']").await;
    let text = page_text(browser).await;
    if !text.contains("Signed in: the app has its tokens") {
        return Err(format!("the code exchange after confirming failed: {text}"));
    }

    browser
        .goto(&format!("{issuer}/account"))
        .await
        .map_err(|e| e.to_string())?;
    wait_for(
        browser,
        "form[action='/account/apps/demo-app/remove'] button",
    )
    .await;
    screenshot(browser, "account-apps.png").await;
    click(
        browser,
        "form[action='/account/apps/demo-app/remove'] button",
    )
    .await?;
    let text = wait_for_text(browser, "access was removed").await;
    if !text.contains("Access for Demo notes app was removed") {
        return Err(format!("no security event for the removal: {text}"));
    }
    browser
        .goto(&format!("{issuer}/demo/start"))
        .await
        .map_err(|e| e.to_string())?;
    wait_for(browser, "form[action='/consent'] input[name=device_name]").await;
    Ok(())
}

/// Wait until the browser is at the `ELSEWHERE_*` redirect URI with a code.
async fn lands_elsewhere(browser: &Client, server: &Server, after: &str) -> Result<(), String> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let url = browser.current_url().await.map_err(|e| e.to_string())?;
        if url.as_str().starts_with(&server.elsewhere)
            && url.query_pairs().any(|(k, _)| k == "code")
        {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            let _ = screenshot_named(browser, "failure.png").await;
            return Err(format!(
                "after {after} the browser is at {url}, not back at {}",
                server.elsewhere
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The consent page, the sign-in page and the confirmation page each end, for these clients, in
/// a redirect to another origin; Chromium blocks it unless the page's `form-action` allows it.
pub async fn forms_that_end_on_another_origin(
    browser: &Client,
    server: &Server,
) -> Result<(), String> {
    let issuer = &server.issuer;
    let request = |client: &str| {
        format!(
            "{issuer}/authorize?response_type=code&client_id={client}&redirect_uri={}&scope=notes%3Aread&state=e2e\
             &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            url::form_urlencoded::byte_serialize(server.elsewhere.as_bytes()).collect::<String>()
        )
    };
    // The consent page of the confidential app.
    browser
        .goto(&request(ELSEWHERE_WEB))
        .await
        .map_err(|e| e.to_string())?;
    wait_for(browser, "form[action='/consent'] input[name=device_name]").await;
    click(browser, "button[name=decision][value=allow]").await?;
    lands_elsewhere(browser, server, "allowing on the consent page").await?;

    // The sign-in page of a request that then goes straight back (consent is remembered).
    // WebDriver deletes the cookies of the current page's host: sign out on the server's.
    browser
        .goto(&format!("{issuer}/healthz"))
        .await
        .map_err(|e| e.to_string())?;
    browser
        .delete_all_cookies()
        .await
        .map_err(|e| e.to_string())?;
    browser
        .goto(&request(ELSEWHERE_WEB))
        .await
        .map_err(|e| e.to_string())?;
    let username = wait_for(browser, "form[action='/login'] input[name=username]").await;
    username
        .send_keys("demo")
        .await
        .map_err(|e| e.to_string())?;
    browser
        .find(Locator::Css("input[name=password]"))
        .await
        .map_err(|e| e.to_string())?
        .send_keys(DEMO_PASSWORD)
        .await
        .map_err(|e| e.to_string())?;
    click(browser, "form[action='/login'] button[type=submit]").await?;
    lands_elsewhere(browser, server, "signing in").await?;

    // The public app: consent once, then the confirmation page.
    browser
        .goto(&request(ELSEWHERE_NATIVE))
        .await
        .map_err(|e| e.to_string())?;
    wait_for(browser, "form[action='/consent'] input[name=device_name]").await;
    click(browser, "button[name=decision][value=allow]").await?;
    lands_elsewhere(browser, server, "allowing the public app").await?;
    browser
        .goto(&request(ELSEWHERE_NATIVE))
        .await
        .map_err(|e| e.to_string())?;
    wait_for(
        browser,
        "form[action='/consent'] button[name=decision][value=allow]",
    )
    .await;
    if !page_text(browser).await.contains("Continue to") {
        return Err("expected the confirmation page for the public app".into());
    }
    click(browser, "button[name=decision][value=allow]").await?;
    lands_elsewhere(browser, server, "continuing on the confirmation page").await
}
