// The portable schema (see migrations/). Kept by hand in the shape `diesel print-schema` prints.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        security_version -> BigInt,
        disabled -> Bool,
        not_before -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        display_name -> Nullable<Text>,
        email -> Nullable<Text>,
        email_verified -> Bool,
    }
}

diesel::table! {
    clients (client_id) {
        client_id -> Text,
        name -> Text,
        secret_hash -> Nullable<Text>,
        is_public -> Bool,
        redirect_uris -> Text,
        grant_types -> Text,
        scopes -> Text,
        audience -> Text,
        first_party -> Bool,
        created_at -> BigInt,
        permissions -> Text,
        id_token_signed_response_alg -> Text,
        backchannel_logout_uri -> Nullable<Text>,
        post_logout_redirect_uris -> Text,
        require_dpop -> Bool,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        public_key -> Text,
        private_key_encrypted -> Text,
        created_at -> BigInt,
        activates_at -> BigInt,
        retired_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> BigInt,
        kind -> Text,
        user_id -> Nullable<Text>,
        client_id -> Nullable<Text>,
        family_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::table! {
    refresh_families (id) {
        id -> Text,
        user_id -> Text,
        client_id -> Text,
        scope -> Text,
        device_name -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        created_at -> BigInt,
        last_used_at -> BigInt,
        idle_expires_at -> BigInt,
        absolute_expires_at -> BigInt,
        rotation_count -> BigInt,
        revoked_at -> Nullable<BigInt>,
        revoked_reason -> Nullable<Text>,
        auth_time -> BigInt,
        dpop_jkt -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        family_id -> Text,
        generation -> BigInt,
        parent_hash -> Nullable<Text>,
        created_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    revoked_access_tokens (jti) {
        jti -> Text,
        client_id -> Text,
        revoked_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    browser_sessions (id_hash) {
        id_hash -> Text,
        user_id -> Text,
        security_version -> BigInt,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        expires_at -> BigInt,
        auth_time -> BigInt,
    }
}

diesel::table! {
    auth_codes (code_hash) {
        code_hash -> Text,
        client_id -> Text,
        user_id -> Text,
        redirect_uri -> Text,
        scope -> Text,
        pkce_challenge -> Nullable<Text>,
        device_name -> Nullable<Text>,
        session_hash -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        family_id -> Nullable<Text>,
        redirect_uri_given -> Bool,
        nonce -> Nullable<Text>,
        auth_time -> BigInt,
        dpop_jkt -> Nullable<Text>,
    }
}

diesel::table! {
    consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        scope -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    revocation_feed (seq) {
        seq -> BigInt,
        kind -> Text,
        subject -> Text,
        at -> BigInt,
        expires_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    revocation_feed_head (id) {
        id -> BigInt,
        last_seq -> BigInt,
        epoch -> Text,
    }
}

diesel::table! {
    sign_in_throttles (username_key) {
        username_key -> Text,
        failures -> BigInt,
        last_failure_at -> BigInt,
        blocked_until -> BigInt,
        event_id -> Nullable<Text>,
        event_started_at -> BigInt,
        event_failures -> BigInt,
        event_ip -> Nullable<Text>,
        event_ips_vary -> Bool,
    }
}

diesel::table! {
    logout_deliveries (family_id) {
        family_id -> Text,
        client_id -> Text,
        user_id -> Text,
        created_at -> BigInt,
        attempts -> BigInt,
        next_attempt_at -> BigInt,
        last_attempt_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        delivered_at -> Nullable<BigInt>,
        given_up_at -> Nullable<BigInt>,
        lease_id -> Nullable<Text>,
        leased_until -> Nullable<BigInt>,
    }
}

diesel::joinable!(refresh_tokens -> refresh_families (family_id));
diesel::joinable!(refresh_families -> clients (client_id));
diesel::joinable!(logout_deliveries -> clients (client_id));
diesel::joinable!(refresh_families -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    clients,
    signing_keys,
    audit_events,
    refresh_families,
    refresh_tokens,
    revoked_access_tokens,
    browser_sessions,
    auth_codes,
    consents,
    revocation_feed,
    revocation_feed_head,
    sign_in_throttles,
    logout_deliveries,
);
