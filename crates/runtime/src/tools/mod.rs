//! Built-in tools for hosted agents.
