//! Issue 10, item 4. Its tests land with its fix.
