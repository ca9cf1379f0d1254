//! rampart's central server. Today: authentication primitives (password
//! hashing, machine tokens) shared by the server and the `rampart user` /
//! `rampart token` commands.

pub mod auth;
