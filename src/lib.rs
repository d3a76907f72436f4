//! gort: placeholder until the scheduler lands.
