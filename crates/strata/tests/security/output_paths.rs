//! Issue 10, item 6. Its tests land with its fix.
