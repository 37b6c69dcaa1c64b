//! The dead-letter queue kept in localStorage.
