//! Berth on a real node: one cluster for the binary with one real node beside its kwok nodes
//! (berth_testenv::shared_real_node), real containers from Berth's images, real traffic. The
//! tests take turns (the node and the machine's network are one), each under its own names.

mod auth;
mod console;
mod gateway;
mod models;
mod network;
mod notebook_probes;
mod notebooks;
mod operator;
mod platform;
mod security;
mod serving;
mod support;
