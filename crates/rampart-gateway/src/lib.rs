//! rampart's inline HTTP gateway.
