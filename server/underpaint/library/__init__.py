"""The user's prompt library, kept by the daemon so every host shares it: styles and history."""
