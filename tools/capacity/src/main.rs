//! `capacity`: see the crate's docs; the traffic phases and the model come next.

fn main() {}
