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
    }
}
