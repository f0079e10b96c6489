//! Issue 10, item 5. Its tests land with its fix.
