//! The kernel-wide policy knobs and the online types, in the words sysfs and the kernel
//! command line use (one list per type: `ALL`, with `as_str` and `from_name`).

/// `auto_online_blocks`: what happens to new memory blocks right after a hot-add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoOnline {
    Offline,
    Online,
    OnlineKernel,
    OnlineMovable,
}

impl AutoOnline {
    /// Every setting, in the kernel's order.
    pub const ALL: [AutoOnline; 4] = [AutoOnline::Offline, AutoOnline::Online, AutoOnline::OnlineKernel, AutoOnline::OnlineMovable];

    /// The kernel's sysfs text.
    pub fn as_str(self) -> &'static str {
        match self {
            AutoOnline::Offline => "offline",
            AutoOnline::Online => "online",
            AutoOnline::OnlineKernel => "online_kernel",
            AutoOnline::OnlineMovable => "online_movable",
        }
    }

    /// How a new block is onlined under this setting (`None`: left offline).
    pub fn online_type(self) -> Option<OnlineType> {
        match self {
            AutoOnline::Offline => None,
            AutoOnline::Online => Some(OnlineType::Online),
            AutoOnline::OnlineKernel => Some(OnlineType::OnlineKernel),
            AutoOnline::OnlineMovable => Some(OnlineType::OnlineMovable),
        }
    }

    /// The value sysfs shows as `name`, if any.
    pub fn from_name(name: &str) -> Option<AutoOnline> {
        AutoOnline::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// `memory_hotplug.online_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnlinePolicy {
    ContigZones,
    AutoMovable,
}

impl OnlinePolicy {
    /// Both policies.
    pub const ALL: [OnlinePolicy; 2] = [OnlinePolicy::ContigZones, OnlinePolicy::AutoMovable];

    /// The parameter's text.
    pub fn as_str(self) -> &'static str {
        match self {
            OnlinePolicy::ContigZones => "contig-zones",
            OnlinePolicy::AutoMovable => "auto-movable",
        }
    }

    /// The policy a parameter or config names.
    pub fn from_name(name: &str) -> Option<OnlinePolicy> {
        OnlinePolicy::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// How a block is onlined (the sysfs `state` words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnlineType {
    Online,
    OnlineKernel,
    OnlineMovable,
}

impl OnlineType {
    /// Every online type.
    pub const ALL: [OnlineType; 3] = [OnlineType::Online, OnlineType::OnlineKernel, OnlineType::OnlineMovable];

    /// The online type a config names.
    pub fn from_name(name: &str) -> Option<OnlineType> {
        OnlineType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The sysfs `state` word.
    pub fn as_str(self) -> &'static str {
        match self {
            OnlineType::Online => "online",
            OnlineType::OnlineKernel => "online_kernel",
            OnlineType::OnlineMovable => "online_movable",
        }
    }
}
