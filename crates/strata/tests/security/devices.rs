//! Issue 10, item 1. Its tests land with its fix.
