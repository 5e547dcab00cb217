// @generated automatically by Diesel CLI.

diesel::table! {
    pages (id) {
        id -> Integer,
        method -> Text,
        host -> Text,
        path_and_query -> Text,
        first_seen -> BigInt,
        last_seen -> BigInt,
        times_stored -> BigInt,
        seq -> BigInt,
        stored_by -> Nullable<Text>,
        peer_url -> Nullable<Text>,
    }
}

diesel::table! {
    purges (id) {
        id -> Integer,
        kind -> Text,
        host -> Text,
        target -> Text,
        soft -> Bool,
        created_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(pages, purges);
