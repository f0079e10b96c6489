//! Issue 10, item 2. Its tests land with its fix.
