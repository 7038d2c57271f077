//! The one command table: every command of the guide's CLI chapter (spec B §3, all 180, in its
//! order and sections), its short aliases (spec B Appendix A), legacy names (Appendix B), syntax,
//! required right, and either its handler or what will bring it. Extension commands follow in
//! their own section. `docs/cli.md` is generated from this table (see `tests::docs_match_table`).
//!
//! Names are matched case-insensitively. The guide prints `gtacnt` for both GetAccountSettings and
//! GetAccountEffectiveSettings, and `upddmn` for both UpdateDomainSettings and SetDomainSettings;
//! each alias goes to its first occurrence (spec B Appendix D 1-2).

use super::args::Args;
use super::cmd_session as ses;
use super::cmd_webfile as w;
use super::rights::Need;
use super::{cmd_account as a, cmd_domain as d, cmd_mailbox as m, cmd_queue as q, cmd_server as s};
use super::{CliContext, CmdResult, Session};

/// A command handler.
pub type Handler = fn(&CliContext, &Session, &mut Args) -> CmdResult;

/// Whether a command works now.
#[derive(Clone, Copy)]
pub enum State {
    /// Implemented by this handler.
    Implemented(Handler),
    /// Not yet: answers `501 Unknown command`; the text names what will bring it.
    Planned(&'static str),
}

/// One command.
pub struct Command {
    /// The guide's name (its letter case).
    pub name: &'static str,
    /// Short aliases from the guide.
    pub aliases: &'static [&'static str],
    /// Old names still accepted (guide.txt:23749-23751, 24238).
    pub legacy: &'static [&'static str],
    /// Syntax line in the guide's style.
    pub syntax: &'static str,
    /// Right checked before the handler runs.
    pub need: Need,
    /// One sentence: what it does.
    pub doc: &'static str,
    /// Handler or plan.
    pub state: State,
}

/// A section of the table (the guide's CLI chapter sections, then the extensions).
pub struct Section {
    /// Title.
    pub title: &'static str,
    /// Commands in order.
    pub commands: &'static [Command],
}

macro_rules! cmd {
    ($name:literal, [$($al:literal),*], [$($lg:literal),*], $syn:literal, $need:ident, $doc:literal, $h:path) => {
        Command { name: $name, aliases: &[$($al),*], legacy: &[$($lg),*], syntax: $syn,
                  need: Need::$need, doc: $doc, state: State::Implemented($h) }
    };
}
macro_rules! plan {
    ($name:literal, [$($al:literal),*], $syn:literal, $need:ident, $doc:literal, $by:expr) => {
        Command { name: $name, aliases: &[$($al),*], legacy: &[], syntax: $syn,
                  need: Need::$need, doc: $doc, state: State::Planned($by) }
    };
}

const CLUSTER: &str = "not planned: Dynamic Cluster is out of scope for a single server";
const DIRECTORY: &str = "the Directory module (LDAP issue)";
const ALERTS: &str = "alerts (WebUser issue)";
const LISTS: &str = "the LIST module (mailing lists issue)";
const SKINS: &str = "WebUser skins (HTTP WebUser issue)";
const WEBUSER: &str = "WebUser sessions (HTTP WebUser issue)";

/// The whole table.
#[rustfmt::skip]
pub static SECTIONS: &[Section] = &[
    Section { title: "Account Administration", commands: &[
        cmd!("ListAccounts", ["lstacnt"], [], "ListAccounts [ domainName ]", DomainAdmin,
             "Lists the accounts of the domain: a dictionary of account name to account type.", a::list_accounts),
        cmd!("CreateAccount", ["cracnt"], [], "CreateAccount accountName [ accountType ] [ external ] [ settings ]", DomainAdmin,
             "Creates an account (MultiMailbox, TextMailbox or MailDirMailbox) with the Account Template and these settings; a domain administrator needs CanCreateAccounts.", a::create_account),
        cmd!("RenameAccount", ["rnacnt"], [], "RenameAccount oldAccountName into newAccountName", DomainAdmin,
             "Renames an account, possibly into another domain; needs CanCreateAccounts for a domain administrator.", a::rename_account),
        cmd!("DeleteAccount", ["dlacnt"], [], "DeleteAccount oldAccountName", DomainAdmin,
             "Removes an account with its mailboxes; needs CanCreateAccounts for a domain administrator.", a::delete_account),
        cmd!("GetAccountSettings", ["gtacnt"], ["GetAccount"], "GetAccountSettings accountName", User,
             "Returns the explicitly set account settings; any user may read their own (`*`).", a::get_account_settings),
        cmd!("UpdateAccountSettings", ["updacnt"], ["UpdateAccount"], "UpdateAccountSettings accountName newSettings", DomainAdmin,
             "Merges settings into the account's (`default` removes a key); a domain administrator changes only the settings it may modify.", a::update_account_settings),
        cmd!("GetAccountEffectiveSettings", [], [], "GetAccountEffectiveSettings accountName", User,
             "Returns the account settings with defaults filled in; any user may read their own (`*`).", a::get_account_effective_settings),
        cmd!("SetAccountPassword", [], [], "SetAccountPassword accountName To newPassword", User,
             "Sets the account password, stored with the effective Password Encryption; needs BasicSettings for a domain administrator; a user may set their own when PWDAllowed is YES.", a::set_account_password),
        cmd!("VerifyAccountPassword", [], [], "VerifyAccountPassword accountName PASSWORD password", DomainAdmin,
             "Succeeds if the password is the account's password, fails with an error otherwise.", a::verify_account_password),
        cmd!("GetAccountAliases", ["gtacntals"], [], "GetAccountAliases accountName", DomainAdmin,
             "Returns the array of the account's aliases.", a::get_account_aliases),
        cmd!("SetAccountAliases", ["stacntals"], [], "SetAccountAliases accountName newAliases", DomainAdmin,
             "Replaces the account's aliases with this array; needs CanCreateAliases for a domain administrator.", a::set_account_aliases),
        cmd!("GetAccountRules", ["gtacntrl"], [], "GetAccountRules accountName", User,
             "Returns the account's Rules array: (priority, name, conditions, actions) per rule; any user may read their own.", a::get_account_rules),
        cmd!("SetAccountRules", ["stacntrl"], [], "SetAccountRules accountName newRules", User,
             "Replaces the account's Rules, each checked (a bad one refuses the whole set, naming the rule and the element); needs CanModifyRules for a domain administrator, and Write To Log needs the Server Administrator. A user may change their own rules within their RulesAllowed right, and the #Auto-Reply rule always.", a::set_account_rules),
        cmd!("GetAccountRPOP", [], [], "GetAccountRPOP accountName", User,
             "Returns the account's RPOP records: an array of {PollEvery; Account; Host=\"host[:port]\"; Password; Leave=Yes|No; APOP=Yes|No; Last} (Last: the time of the last successful poll, or its error). A user may read their own when RPOPAllowed is YES.", a::get_account_rpop),
        cmd!("SetAccountRPOP", [], [], "SetAccountRPOP accountName newRecords", User,
             "Replaces the account's RPOP records (same form, without Last; PollEvery=never drops a row); needs CanModifyRPOP for a domain administrator. A user may set their own when RPOPAllowed is YES, within the RPOP module's MinPollPeriodForUsers and MaxAccountsPerUser.", a::set_account_rpop),
        cmd!("GetAccountRights", ["gtacntrght"], [], "GetAccountRights accountName", DomainAdmin,
             "Returns the array of the account's access right codes.", a::get_account_rights),
        cmd!("GetAccountInfo", ["gtacntinf"], [], "GetAccountInfo accountName Key keyName", User,
             "Returns one element of the account's info (e.g. LastLogin), `\"\"` if absent; any user may read their own.", a::get_account_info),
        cmd!("GetWebUser", ["gtwusr"], [], "GetWebUser accountName", DomainAdmin,
             "Returns the account's WebUser settings.", a::get_web_user),
        cmd!("SetWebUser", ["stwusr"], [], "SetWebUser accountName newSettings", DomainAdmin,
             "Replaces the account's WebUser settings.", a::set_web_user),
    ]},
    Section { title: "Group Administration", commands: &[
        cmd!("ListGroups", [], [], "ListGroups [ domainName ]", DomainAdmin,
             "Returns the array of the domain's group names.", a::list_groups),
        cmd!("CreateGroup", [], [], "CreateGroup groupName [ settings ]", DomainAdmin,
             "Creates a group with these settings and members; needs CanCreateGroups for a domain administrator.", a::create_group),
        cmd!("RenameGroup", [], [], "RenameGroup oldGroupName into newGroupName", DomainAdmin,
             "Renames a group; needs CanCreateGroups for a domain administrator.", a::rename_group),
        cmd!("DeleteGroup", [], [], "DeleteGroup groupName", DomainAdmin,
             "Removes a group; needs CanCreateGroups for a domain administrator.", a::delete_group),
        cmd!("GetGroup", [], [], "GetGroup groupName", DomainAdmin,
             "Returns the group's settings and members.", a::get_group),
        cmd!("SetGroup", [], [], "SetGroup groupName newSettings", DomainAdmin,
             "Replaces the group's settings and members; needs CanCreateGroups for a domain administrator.", a::set_group),
    ]},
    Section { title: "Forwarder Administration", commands: &[
        cmd!("ListForwarders", [], [], "ListForwarders [ domainName ]", DomainAdmin,
             "Returns the array of the domain's forwarder names.", a::list_forwarders),
        cmd!("CreateForwarder", [], [], "CreateForwarder forwarderName TO address", DomainAdmin,
             "Creates a forwarder to this address; needs CanCreateForwarders for a domain administrator.", a::create_forwarder),
        cmd!("DeleteForwarder", [], [], "DeleteForwarder forwarderName", DomainAdmin,
             "Removes a forwarder; needs CanCreateForwarders for a domain administrator.", a::delete_forwarder),
        cmd!("GetForwarder", [], [], "GetForwarder forwarderName", DomainAdmin,
             "Returns the forwarder's address.", a::get_forwarder),
    ]},
    Section { title: "Domain Administration", commands: &[
        cmd!("GetDomainSettings", ["gtdmn"], ["GetDomain"], "GetDomainSettings [ domainName ]", DomainAdmin,
             "Returns the explicitly set domain settings.", d::get_domain_settings),
        cmd!("GetDomainEffectiveSettings", [], [], "GetDomainEffectiveSettings [ domainName ]", DomainAdmin,
             "Returns the domain settings with the server-wide defaults filled in.", d::get_domain_effective_settings),
        cmd!("UpdateDomainSettings", ["upddmn"], ["UpdateDomain"], "UpdateDomainSettings [ domainName ] newSettings", DomainAdmin,
             "Merges settings into the domain's (`default` removes a key); a domain administrator changes only the settings it may modify.", d::update_domain_settings),
        cmd!("GetAccountDefaults", ["gtacndfl"], [], "GetAccountDefaults [ domainName ]", DomainAdmin,
             "Returns the domain's Default Account Settings.", d::get_account_defaults),
        cmd!("UpdateAccountDefaults", ["updacndfl"], [], "UpdateAccountDefaults [ domainName ] newSettings", DomainAdmin,
             "Merges into the domain's Default Account Settings (`default` falls back to the server-wide defaults).", d::update_account_defaults),
        cmd!("GetWebUserDefaults", ["gtwusrdfl"], [], "GetWebUserDefaults [ domainName ]", DomainAdmin,
             "Returns the domain's default WebUser settings.", d::get_web_user_defaults),
        cmd!("SetWebUserDefaults", ["stwusrdfl"], [], "SetWebUserDefaults [ domainName ] newSettings", DomainAdmin,
             "Replaces the domain's default WebUser settings.", d::set_web_user_defaults),
        cmd!("GetAccountTemplate", ["gtacntmp"], [], "GetAccountTemplate [ domainName ]", DomainAdmin,
             "Returns the domain's Account Template.", d::get_account_template),
        cmd!("UpdateAccountTemplate", ["updacntmp"], [], "UpdateAccountTemplate [ domainName ] newSettings", DomainAdmin,
             "Merges settings into the domain's Account Template.", d::update_account_template),
        cmd!("GetDomainAliases", ["gtdmnals"], [], "GetDomainAliases domainName", DomainAdmin,
             "Returns the array of the domain's aliases.", d::get_domain_aliases),
        cmd!("ListDomains", ["lstdmn"], [], "ListDomains", SysAdmin,
             "Returns the array of all domain names, the main domain first.", d::list_domains),
        cmd!("MainDomainName", [], [], "MainDomainName", SysAdmin,
             "Returns the main domain name.", d::main_domain_name),
        cmd!("GetDomainDefaults", ["gtdmndfl"], [], "GetDomainDefaults", SysAdmin,
             "Returns the server-wide Default Domain Settings.", d::get_domain_defaults),
        cmd!("UpdateDomainDefaults", ["upddmndfl"], [], "UpdateDomainDefaults newSettings", SysAdmin,
             "Merges settings into the server-wide Default Domain Settings.", d::update_domain_defaults),
        cmd!("SetDomainDefaults", [], [], "SetDomainDefaults newSettings", SysAdmin,
             "Replaces the server-wide Default Domain Settings.", d::set_domain_defaults),
        plan!("GetClusterDomainDefaults", [], "GetClusterDomainDefaults", SysAdmin,
              "Returns the cluster-wide Default Domain Settings.", CLUSTER),
        plan!("UpdateClusterDomainDefaults", [], "UpdateClusterDomainDefaults newSettings", SysAdmin,
              "Merges into the cluster-wide Default Domain Settings.", CLUSTER),
        plan!("SetClusterDomainDefaults", [], "SetClusterDomainDefaults newSettings", SysAdmin,
              "Replaces the cluster-wide Default Domain Settings.", CLUSTER),
        cmd!("GetAllAccountsDefaults", ["gtalacndfl"], [], "GetAllAccountsDefaults", SysAdmin,
             "Returns the server-wide Default Account Settings.", d::get_all_accounts_defaults),
        cmd!("UpdateAllAccountsDefaults", ["updalacndfl"], [], "UpdateAllAccountsDefaults newSettings", SysAdmin,
             "Merges settings into the server-wide Default Account Settings.", d::update_all_accounts_defaults),
        cmd!("SetAllAccountsDefaults", [], [], "SetAllAccountsDefaults newSettings", SysAdmin,
             "Replaces the server-wide Default Account Settings.", d::set_all_accounts_defaults),
        plan!("GetClusterAccountDefaults", [], "GetClusterAccountDefaults", SysAdmin,
              "Returns the cluster-wide Default Account Settings.", CLUSTER),
        plan!("UpdateClusterAccountDefaults", [], "UpdateClusterAccountDefaults newSettings", SysAdmin,
              "Merges into the cluster-wide Default Account Settings.", CLUSTER),
        plan!("SetClusterAccountDefaults", [], "SetClusterAccountDefaults newSettings", SysAdmin,
              "Replaces the cluster-wide Default Account Settings.", CLUSTER),
        cmd!("CreateDomain", ["crdmn"], [], "CreateDomain domainName [ settings ]", SysAdmin,
             "Creates a secondary domain with these settings.", d::create_domain),
        cmd!("RenameDomain", ["rndmn"], [], "RenameDomain oldDomainName into newDomainName", SysAdmin,
             "Renames a domain (the `into` keyword may be omitted, as the guide's rndmn line shows).", d::rename_domain),
        cmd!("DeleteDomain", ["dldmn"], [], "DeleteDomain oldDomainName [ force ]", SysAdmin,
             "Removes a secondary domain; `force` removes it with all its accounts.", d::delete_domain),
        plan!("CreateSharedDomain", [], "CreateSharedDomain domainName [ settings ]", SysAdmin,
              "Creates a domain shared by cluster members.", CLUSTER),
        plan!("CreateDirectoryDomain", [], "CreateDirectoryDomain domainName [ settings ]", SysAdmin,
              "Creates a domain kept in the Directory.", DIRECTORY),
        plan!("ReloadDirectoryDomains", [], "ReloadDirectoryDomains", SysAdmin,
              "Rescans the Directory for Directory-based domains.", DIRECTORY),
        cmd!("SetDomainAliases", ["stdmnals"], [], "SetDomainAliases domainName newAliases", SysAdmin,
             "Replaces the domain's aliases with this array.", d::set_domain_aliases),
        plan!("GetDirectoryIntegration", [], "GetDirectoryIntegration", SysAdmin,
              "Returns the Directory Integration settings.", DIRECTORY),
        plan!("SetDirectoryIntegration", [], "SetDirectoryIntegration newSettings", SysAdmin,
              "Replaces the Directory Integration settings.", DIRECTORY),
        plan!("GetClusterDirectoryIntegration", [], "GetClusterDirectoryIntegration", SysAdmin,
              "Returns the cluster-wide Directory Integration settings.", CLUSTER),
        plan!("SetClusterDirectoryIntegration", [], "SetClusterDirectoryIntegration newSettings", SysAdmin,
              "Replaces the cluster-wide Directory Integration settings.", CLUSTER),
        cmd!("SetDomainSettings", [], ["SetDomain"], "SetDomainSettings domainName newSettings", SysAdmin,
             "Replaces all domain settings.", d::set_domain_settings),
        cmd!("SetAccountSettings", ["stacnt"], ["SetAccount"], "SetAccountSettings accountName newSettings", SysAdmin,
             "Replaces all account settings.", a::set_account_settings),
        cmd!("SetAccountDefaults", ["stacndfl"], [], "SetAccountDefaults [ domainName ] newSettings", SysAdmin,
             "Replaces the domain's Default Account Settings.", d::set_account_defaults),
        cmd!("SetAccountTemplate", ["stacntmp"], [], "SetAccountTemplate [ domainName ] newSettings", SysAdmin,
             "Replaces the domain's Account Template.", d::set_account_template),
        cmd!("GetAccountLocation", [], [], "GetAccountLocation accountName", SysAdmin,
             "Returns the account's file directory (or INBOX file) relative to its domain directory.", a::get_account_location),
    ]},
    Section { title: "Mailbox Administration", commands: &[
        cmd!("LISTMAILBOXES", ["lstmbx"], [], "LISTMAILBOXES accountName [ FILTER filter ] [ AUTH authAccountName ]", User,
             "Lists the account's mailboxes (IMAP `*`/`%` filter): name to information dictionary, `()` for a folder only or without the Select right, `(info)` for a mailbox that is also a folder; with AUTH only mailboxes it may Lookup. Owner, All Accounts and Domains, or CanAccessMailboxes.", m::list_mailboxes),
        cmd!("CREATEMAILBOX", [], [], "CREATEMAILBOX accountName MAILBOX mailboxName [ AUTH authAccountName ]", User,
             "Creates a mailbox (`name/` creates only the folder, `name.mdir` chooses the format); a submailbox inherits its parent's ACL; AUTH needs Create on the outer mailbox.", m::create_mailbox),
        cmd!("DELETEMAILBOX", [], [], "DELETEMAILBOX accountName MAILBOX[ES] mailboxName [ AUTH authAccountName ]", User,
             "Removes a mailbox (with MAILBOXES, its submailboxes too); INBOX cannot be removed; AUTH needs Create on the outer mailbox and Delete on it.", m::delete_mailbox),
        cmd!("RENAMEMAILBOX", [], [], "RENAMEMAILBOX accountName MAILBOX[ES] mailboxName INTO newMailboxName [ AUTH authAccountName ]", User,
             "Renames a mailbox (with MAILBOXES, its submailboxes too); renaming INBOX leaves a new empty INBOX; AUTH needs the delete rights on the old name and the create rights on the new one.", m::rename_mailbox),
        cmd!("GETMAILBOXINFO", [], [], "GETMAILBOXINFO accountName MAILBOX mailboxName [ AUTH authAccountName ]", User,
             "Returns a mailbox's information: Format, Messages, Unseen, Size, UIDNext, UIDValidity; AUTH needs Select.", m::get_mailbox_info),
        cmd!("GETMAILBOXACL", [], [], "GETMAILBOXACL accountName MAILBOX mailboxName [ AUTH authAccountName ]", User,
             "Returns a mailbox's access control list: identifier (`anyone`, `name`, `name@domain`, `-name`) to rights letters `lrswdipca`; AUTH needs Administer.", m::get_mailbox_acl),
        cmd!("SETMAILBOXACL", [], [], "SETMAILBOXACL accountName MAILBOX mailboxName [ AUTH authAccountName ] newACL", User,
             "Modifies a mailbox's access control list: `+letters` adds, `-letters` removes, other letters replace; an element left empty is removed; AUTH needs Administer.", m::set_mailbox_acl),
        cmd!("GETMAILBOXRIGHTS", [], [], "GETMAILBOXRIGHTS accountName MAILBOX mailboxName AUTH authAccountName", User,
             "Returns the effective rights of authAccountName on the mailbox (all for the owner and administrators, else anyone + name - -name).", m::get_mailbox_rights),
        cmd!("GETACCOUNTSUBSCRIPTION", [], [], "GETACCOUNTSUBSCRIPTION accountName", User,
             "Returns the account's mailbox subscription list.", m::get_account_subscription),
        cmd!("SETACCOUNTSUBSCRIPTION", [], [], "SETACCOUNTSUBSCRIPTION accountName newSubscription", User,
             "Replaces the account's mailbox subscription list (an array of mailbox names, foreign ones allowed).", m::set_account_subscription),
        cmd!("GETMAILBOXALIASES", [], [], "GETMAILBOXALIASES accountName", User,
             "Returns the account's mailbox aliases.", m::get_mailbox_aliases),
        cmd!("SETMAILBOXALIASES", [], [], "SETMAILBOXALIASES accountName newAliases", User,
             "Replaces the account's mailbox aliases: a dictionary of top-level alias name to mailbox name (e.g. `~sales/INBOX`).", m::set_mailbox_aliases),
    ]},
    Section { title: "Alert Administration", commands: &[
        plan!("GetDomainAlerts", ["gtalrt"], "GetDomainAlerts [ domainName ]", DomainAdmin,
              "Returns the domain's alerts.", ALERTS),
        plan!("SetDomainAlerts", ["stalrt"], "SetDomainAlerts [ domainName ] newAlerts", DomainAdmin,
              "Replaces the domain's alerts.", ALERTS),
        plan!("PostDomainAlert", [], "PostDomainAlert [ domainName ALERT ] newAlert", DomainAdmin,
              "Posts an alert to the domain's users.", ALERTS),
        plan!("RemoveDomainAlert", [], "RemoveDomainAlert [ domainName ALERT ] timeStamp", DomainAdmin,
              "Removes a domain alert.", ALERTS),
        plan!("GetServerAlerts", [], "GetServerAlerts", SysAdmin, "Returns the server-wide alerts.", ALERTS),
        plan!("SetServerAlerts", [], "SetServerAlerts newAlerts", SysAdmin, "Replaces the server-wide alerts.", ALERTS),
        plan!("PostServerAlert", [], "PostServerAlert newAlert", SysAdmin, "Posts a server-wide alert.", ALERTS),
        plan!("RemoveServerAlert", [], "RemoveServerAlert timeStamp", SysAdmin, "Removes a server-wide alert.", ALERTS),
        plan!("GetClusterAlerts", [], "GetClusterAlerts", SysAdmin, "Returns the cluster-wide alerts.", CLUSTER),
        plan!("SetClusterAlerts", [], "SetClusterAlerts newAlerts", SysAdmin, "Replaces the cluster-wide alerts.", CLUSTER),
        plan!("PostClusterAlert", [], "PostClusterAlert newAlert", SysAdmin, "Posts a cluster-wide alert.", CLUSTER),
        plan!("RemoveClusterAlert", [], "RemoveClusterAlert timeStamp", SysAdmin, "Removes a cluster-wide alert.", CLUSTER),
    ]},
    Section { title: "Personal Web Site Administration", commands: &[
        cmd!("GETWEBFILE", [], [], "GETWEBFILE accountName FILE fileName", User,
             "Returns a web-site file: (base64 content, modification date in ACAP time). Owner, or `Users`, or domain administration with `WebSite`.", w::get_web_file),
        cmd!("PUTWEBFILE", [], [], "PUTWEBFILE accountName FILE fileName DATA encodedData", User,
             "Stores a web-site file from base64 data, replacing an old one and creating missing folders; refused past MaxWebSize (0 disables the site) or MaxWebFiles, and for the top-level index.html.", w::put_web_file),
        cmd!("RENAMEWEBFILE", [], [], "RENAMEWEBFILE accountName FILE oldFileName INTO newFileName", User,
             "Renames (moves) a web-site file or folder; the target folder must exist.", w::rename_web_file),
        cmd!("DELETEWEBFILE", [], [], "DELETEWEBFILE accountName FILE fileName", User,
             "Removes a web-site file, or a folder with its content.", w::delete_web_file),
        cmd!("LISTWEBFILES", [], [], "LISTWEBFILES accountName [ PATH filePath ]", User,
             "Lists a web-site folder: name to `{Size; Modified;}` for a file, `()` for a folder.", w::list_web_files),
        cmd!("GETWEBFILESINFO", [], ["INFOWEBFILES"], "GETWEBFILESINFO accountName", User,
             "Returns the web site's (total size, number of files and folders).", w::get_web_files_info),
    ]},
    Section { title: "Mailing Lists Administration", commands: &[
        plan!("ListLists", [], "ListLists [ domainName ]", DomainAdmin, "Returns the domain's mailing list names.", LISTS),
        plan!("GetDomainLists", [], "GetDomainLists [ domainName ]", DomainAdmin,
              "Returns the domain's lists with their subscriber counts.", LISTS),
        plan!("GetAccountLists", [], "GetAccountLists accountName", DomainAdmin,
              "Returns the lists an account owns with their subscriber counts.", LISTS),
        plan!("CreateList", [], "CreateList listName for accountName", DomainAdmin, "Creates a mailing list owned by the account.", LISTS),
        plan!("RenameList", [], "RenameList listName into newName", DomainAdmin, "Renames a mailing list.", LISTS),
        plan!("DeleteList", [], "DeleteList listName", DomainAdmin, "Removes a mailing list.", LISTS),
        plan!("GetList", [], "GetList listName", User, "Returns a list's settings (also for the list owner).", LISTS),
        plan!("UpdateList", [], "UpdateList listName newSettings", User, "Merges settings into a list's (also for the list owner).", LISTS),
        plan!("List", [], "List listName operation [ silently ] [ confirm ] subscriber", User,
              "Subscribes, unsubscribes or changes the mode of a subscriber.", LISTS),
        plan!("ListSubscribers", [], "ListSubscribers listName [ FILTER filter [ limit ] ]", User,
              "Returns the list's subscriber addresses.", LISTS),
        plan!("SetPostingMode", [], "SetPostingMode listName FOR subscriberAddress [ UNMODERATED | MODERATEALL | PROHIBITED | SPECIAL | numberOfModerated ]", User,
              "Sets a subscriber's posting mode.", LISTS),
    ]},
    Section { title: "Web Skins Administration", commands: &[
        plan!("ListDomainSkins", [], "ListDomainSkins [ domainName ]", DomainAdmin, "Returns the domain's skin names.", SKINS),
        plan!("CreateDomainSkin", [], "CreateDomainSkin [ domainName SKIN ] skinName", DomainAdmin, "Creates a domain skin.", SKINS),
        plan!("RenameDomainSkin", [], "RenameDomainSkin [ domainName SKIN ] skinName INTO newSkinName", DomainAdmin, "Renames a domain skin.", SKINS),
        plan!("DeleteDomainSkin", [], "DeleteDomainSkin [ domainName SKIN ] skinName", DomainAdmin, "Removes a domain skin.", SKINS),
        plan!("ListDomainSkinFiles", [], "ListDomainSkinFiles [ domainName SKIN ] skinName", DomainAdmin, "Lists a domain skin's files.", SKINS),
        plan!("ReadDomainSkinFile", [], "ReadDomainSkinFile [ domainName SKIN ] skinName FILE fileName", DomainAdmin,
              "Returns a domain skin file (base64) and its date.", SKINS),
        plan!("StoreDomainSkinFile", [], "StoreDomainSkinFile [ domainName SKIN ] skinName FILE fileName ( DATA fileContent | DELETE )", DomainAdmin,
              "Stores or removes a domain skin file.", SKINS),
        plan!("ListServerSkins", [], "ListServerSkins", SysAdmin, "Returns the server skin names.", SKINS),
        plan!("CreateServerSkin", [], "CreateServerSkin skinName", SysAdmin, "Creates a server skin.", SKINS),
        plan!("RenameServerSkin", [], "RenameServerSkin skinName INTO newSkinName", SysAdmin, "Renames a server skin.", SKINS),
        plan!("DeleteServerSkin", [], "DeleteServerSkin skinName", SysAdmin, "Removes a server skin.", SKINS),
        plan!("ListServerSkinFiles", [], "ListServerSkinFiles skinName", SysAdmin, "Lists a server skin's files.", SKINS),
        plan!("ReadServerSkinFile", [], "ReadServerSkinFile skinName FILE fileName", SysAdmin, "Returns a server skin file (base64) and its date.", SKINS),
        plan!("StoreServerSkinFile", [], "StoreServerSkinFile skinName FILE fileName ( DATA fileContent | DELETE )", SysAdmin,
              "Stores or removes a server skin file.", SKINS),
        plan!("ListClusterSkins", [], "ListClusterSkins", SysAdmin, "Returns the cluster skin names.", CLUSTER),
        plan!("CreateClusterSkin", [], "CreateClusterSkin skinName", SysAdmin, "Creates a cluster skin.", CLUSTER),
        plan!("RenameClusterSkin", [], "RenameClusterSkin skinName INTO newSkinName", SysAdmin, "Renames a cluster skin.", CLUSTER),
        plan!("DeleteClusterSkin", [], "DeleteClusterSkin skinName", SysAdmin, "Removes a cluster skin.", CLUSTER),
        plan!("ListClusterSkinFiles", [], "ListClusterSkinFiles skinName", SysAdmin, "Lists a cluster skin's files.", CLUSTER),
        plan!("ReadClusterSkinFile", [], "ReadClusterSkinFile skinName FILE fileName", SysAdmin, "Returns a cluster skin file.", CLUSTER),
        plan!("StoreClusterSkinFile", [], "StoreClusterSkinFile skinName FILE fileName ( DATA fileContent | DELETE )", SysAdmin,
              "Stores or removes a cluster skin file.", CLUSTER),
    ]},
    Section { title: "Web Interface Integration", commands: &[
        plan!("CreateWebUserSession", [], "CreateWebUserSession accountName ADDRESS ip-address", DomainAdmin,
              "Opens a WebUser session for the account and returns its ID.", WEBUSER),
        plan!("GetWebUserSession", [], "GetWebUserSession sessionID", SysAdmin, "Returns a WebUser session's data.", WEBUSER),
        plan!("KillWebUserSession", [], "KillWebUserSession sessionID", SysAdmin, "Ends a WebUser session.", WEBUSER),
    ]},
    Section { title: "Server Settings", commands: &[
        cmd!("GetModule", [], [], "GetModule moduleName", Settings,
             "Returns a module's settings, declared defaults filled in.", s::get_module),
        cmd!("SetModule", [], [], "SetModule moduleName newSettings", Settings,
             "Replaces a module's settings; unknown keys and invalid values are refused.", s::set_module),
        cmd!("UpdateModule", [], [], "UpdateModule moduleName newSettings", Settings,
             "Merges settings into a module's (`default` removes a key).", s::update_module),
        cmd!("GetBlacklistedIPs", [], [], "GetBlacklistedIPs", Settings,
             "Returns the Blacklisted IP Addresses as a multi-line string.", s::get_blacklisted_ips),
        cmd!("GetClientIPs", [], [], "GetClientIPs", Settings,
             "Returns the Client IP Addresses as a multi-line string.", s::get_client_ips),
        cmd!("GetWhiteHoleIPs", [], [], "GetWhiteHoleIPs", Settings,
             "Returns the WhiteHole IP Addresses as a multi-line string.", s::get_white_hole_ips),
        cmd!("GetProtection", [], [], "GetProtection", Settings,
             "Returns the Protection settings.", s::get_protection),
        cmd!("GetBanned", [], [], "GetBanned", Settings,
             "Returns the Banned message lines settings.", s::get_banned),
        cmd!("SetBlacklistedIPs", [], [], "SetBlacklistedIPs newAddresses", Settings,
             "Replaces the Blacklisted IP Addresses (lines separated with `\\e`).", s::set_blacklisted_ips),
        cmd!("SetClientIPs", [], [], "SetClientIPs newAddresses", Settings,
             "Replaces the Client IP Addresses (lines separated with `\\e`).", s::set_client_ips),
        cmd!("SetWhiteHoleIPs", [], [], "SetWhiteHoleIPs newAddresses", Settings,
             "Replaces the WhiteHole IP Addresses (lines separated with `\\e`).", s::set_white_hole_ips),
        cmd!("SetProtection", [], [], "SetProtection newSettings", Settings,
             "Replaces the Protection settings. DNS options (each table used when its option is Yes): UseRBL with RBLServers (RBL domain names); BlacklistByDNSName with BlacklistedDNSNames, UnBlacklistByDNSName with UnBlacklistedDNSNames, DetectClientsByDNSName with ClientDNSNames (PTR name patterns with *). Checked before they are stored.", s::set_protection),
        cmd!("SetBanned", [], [], "SetBanned newSettings", Settings,
             "Replaces the Banned message lines settings.", s::set_banned),
        plan!("GetClusterBlacklistedIPs", [], "GetClusterBlacklistedIPs", Settings, "Cluster-wide Blacklisted IP Addresses.", CLUSTER),
        plan!("GetClusterClientIPs", [], "GetClusterClientIPs", Settings, "Cluster-wide Client IP Addresses.", CLUSTER),
        plan!("GetClusterWhiteHoleIPs", [], "GetClusterWhiteHoleIPs", Settings, "Cluster-wide WhiteHole IP Addresses.", CLUSTER),
        plan!("GetClusterProtection", [], "GetClusterProtection", Settings, "Cluster-wide Protection settings.", CLUSTER),
        plan!("GetClusterBanned", [], "GetClusterBanned", Settings, "Cluster-wide Banned settings.", CLUSTER),
        plan!("SetClusterBlacklistedIPs", [], "SetClusterBlacklistedIPs newAddresses", Settings, "Sets the cluster-wide Blacklisted IP Addresses.", CLUSTER),
        plan!("SetClusterClientIPs", [], "SetClusterClientIPs newAddresses", Settings, "Sets the cluster-wide Client IP Addresses.", CLUSTER),
        plan!("SetClusterWhiteHoleIPs", [], "SetClusterWhiteHoleIPs newAddresses", Settings, "Sets the cluster-wide WhiteHole IP Addresses.", CLUSTER),
        plan!("SetClusterProtection", [], "SetClusterProtection newSettings", Settings, "Sets the cluster-wide Protection settings.", CLUSTER),
        cmd!("GetServerRules", [], [], "GetServerRules", Settings,
             "Returns the Server-Wide Rules: an array of (priority, name, conditions, actions).", s::get_server_rules),
        cmd!("SetServerRules", [], [], "SetServerRules newRules", Settings,
             "Replaces the Server-Wide Rules; each rule is checked and a bad one refuses the whole set, naming the rule and the element.", s::set_server_rules),
        plan!("GetClusterRules", [], "GetClusterRules", Settings, "Returns the cluster-wide Rules.", CLUSTER),
        plan!("SetClusterRules", [], "SetClusterRules newRules", Settings, "Replaces the cluster-wide Rules.", CLUSTER),
        cmd!("GetRouterTable", [], [], "GetRouterTable", Settings,
             "Returns the Router Table text as a multi-line string.", s::get_router_table),
        cmd!("SetRouterTable", [], [], "SetRouterTable newTable", Settings,
             "Replaces the Router Table (lines separated with `\\e`).", s::set_router_table),
        plan!("GetClusterRouterTable", [], "GetClusterRouterTable", Settings, "Returns the cluster-wide Router Table.", CLUSTER),
        plan!("SetClusterRouterTable", [], "SetClusterRouterTable newTable", Settings, "Replaces the cluster-wide Router Table.", CLUSTER),
        plan!("RefreshOSData", [], "RefreshOSData", Settings,
              "Re-reads the local IP addresses and DNS servers from the OS.", "the DNS resolver (kernel issue)"),
        cmd!("Route", [], [], "Route address", User,
             "Returns how the Router routes an address: (module, host or queue, address); Server Settings or Account Settings.", s::route),
    ]},
    Section { title: "Monitoring", commands: &[
        plan!("GetSNMPElement", [], "GetSNMPElement ObjectID", Monitor, "Returns the value of an SNMP element.", "the SNMP module (SNMP issue)"),
        cmd!("Shutdown", [], [], "Shutdown", Monitor, "Stops the server gracefully.", s::shutdown),
    ]},
    Section { title: "Access Rights Administration", commands: &[
        cmd!("SetAccountRights", ["stacntrght"], [], "SetAccountRights accountName newRights", SysAdmin,
             "Replaces the account's access right codes; needs Master, or All Accounts and Domains for accounts outside the main domain.", a::set_account_rights),
    ]},
    Section { title: "Statistics", commands: &[
        plan!("GETACCOUNTSTAT", [], "GETACCOUNTSTAT accountName [ KEY keyName ]", User,
              "Returns the account's statistics (or one element).", "account statistics (local delivery issue)"),
        plan!("RESETACCOUNTSTAT", [], "RESETACCOUNTSTAT accountName [ KEY keyName ]", DomainAdmin,
              "Resets the account's statistics (or one element).", "account statistics (local delivery issue)"),
        plan!("GETDOMAINSTAT", [], "GETDOMAINSTAT domainName [ KEY keyName ]", DomainAdmin,
              "Returns the domain's statistics (or one element).", "account statistics (local delivery issue)"),
        plan!("RESETDOMAINSTAT", [], "RESETDOMAINSTAT domainName [ KEY keyName ]", DomainAdmin,
              "Resets the domain's statistics (or one element).", "account statistics (local delivery issue)"),
    ]},
    Section { title: "Miscellaneous Commands", commands: &[
        cmd!("WRITELOG", [], [], "WRITELOG logLevel logRecord", Monitor,
             "Writes a record with the SYSTEM tag into the System Log.", s::write_log),
        cmd!("RELEASESMTPQUEUE", [], [], "RELEASESMTPQUEUE queueName", Monitor,
             "Releases an SMTP queue: the deferred recipients of that domain (or relay) are tried now.", q::release_smtp_queue),
    ]},
    Section { title: "Web Interface Tuning (deprecated)", commands: &[
        plan!("GetWebUserInterface", [], "GetWebUserInterface domainName FILE path", DomainAdmin,
              "Returns a WebUser interface file (base64).", SKINS),
        plan!("PutWebUserInterface", [], "PutWebUserInterface domainName FILE path DATA filedata", DomainAdmin,
              "Stores a WebUser interface file.", SKINS),
        plan!("DeleteWebUserInterface", [], "DeleteWebUserInterface domainName FILE path", DomainAdmin,
              "Removes a WebUser interface file.", SKINS),
        plan!("ListWebUserInterface", [], "ListWebUserInterface domainName [ PATH path ]", DomainAdmin,
              "Lists the WebUser interface files.", SKINS),
        plan!("ClearWebUserCache", [], "ClearWebUserCache domainName", DomainAdmin,
              "Clears the WebUser interface cache.", SKINS),
    ]},
    Section { title: "Extensions (not in the guide)", commands: &[
        cmd!("GetServerStatus", [], [], "GetServerStatus", Monitor,
             "Returns a dictionary: Version, MainDomain, Uptime (seconds), Listeners (per module: Connections and Sockets with Port, TLS, State, Address), Connections, QueueSize, QueuedPerDomain (domain: messages), DialupWindow (Open or Closed), NextWindow (when closed), LastSession (the last link session), RemoteServers (the last session with each remote server, by `MODULE server`: Module, Server, Time, Result (OK or the error), Messages moved; RPOP polls, SMTP deliveries (over an ATRN connection: under the customer's domain, with the messages it took), and wake-ups sent to the backup server under ETRN or ATRN).", s::get_server_status),
        cmd!("ReadLog", [], [], "ReadLog [ DAY yyyy-mm-dd ] [ FROM hh:mm ] [ TO hh:mm ] [ LEVEL n ] [ TAG prefix ] [ TEXT substring ] [ AFTER id ] [ LIMIT n | LAST n ]", Monitor,
             "Returns an array of log records {Id=..;Time=..;Level=..;Tag=..;Text=..;} matching every filter given, oldest first; LIMIT n takes the first n (default 1000), LAST n the newest n.", s::read_log),
        cmd!("ListQueue", [], [], "ListQueue [ domainName ]", Monitor,
             "Returns the queued messages (only those with an open recipient in that domain or module queue): an array of {Id; From; Recipients (not yet done); Size; Arrived; State (Queued, Delivering, Deferred: last error, Reporting); NextTry; Source}.", q::list_queue),
        cmd!("ReleaseQueue", [], [], "ReleaseQueue [ target ]", Monitor,
             "Tries the deferred recipients now: all of them, or those of this domain or module queue.", q::release_queue),
        cmd!("RetryQueue", [], [], "RetryQueue [ id ]", Monitor,
             "Tries every deferred recipient now, or those of the queued message id.", q::retry_queue),
        cmd!("DeleteQueuedMessage", [], [], "DeleteQueuedMessage id", Monitor,
             "Removes a queued message (by its ListQueue Id) without delivering it or sending a report.", q::delete_queued_message),
        cmd!("GetDialupSchedule", [], [], "GetDialupSchedule", Settings,
             "Returns the TCP Activity Schedule: an array of {Days=...; When=\"HH:MM-HH:MM\"; Pause=seconds;}; () = no restriction.", s::get_dialup_schedule),
        cmd!("SetDialupSchedule", [], [], "SetDialupSchedule newSchedule", Settings,
             "Replaces the TCP Activity Schedule; Days is Every Day, Mon-Fri, Sat-Sun or a weekday name. Outgoing SMTP waits while the schedule keeps the link closed.", s::set_dialup_schedule),
        cmd!("WakeUpNow", [], [], "WakeUpNow", Monitor,
             "Starts a link session at once where the TCP Activity Schedule lets the link open, whatever its Pause: the queue is flushed, the ETRN/ATRN wake-up sent when SendWakeupsTo is set, remote (RPOP) accounts polled when there are records; returns the names of the actions that ran (queue, RPOP, ETRN/ATRN). Otherwise fails saying until when.", q::wake_up_now),
        cmd!("ListAccountSessions", [], [], "ListAccountSessions accountName", User,
             "Returns the account's IMAP, POP and WebMail sessions, oldest first: an array of {Module (IMAP, POP, WebMail); Address; Since; Mailbox (the selected or open mailbox, when there is one)}. The account setting MaxAccountSessions (our name; default 50; 0 or unlimited for no limit) caps their number: a login beyond it gets IMAP `NO [LIMIT]`, POP `-ERR [IN-USE]`, WebMail an error page.", ses::list_account_sessions),
        cmd!("GETMAILBOXSESSIONS", [], [], "GETMAILBOXSESSIONS accountName MAILBOX mailboxName", User,
             "Returns the sessions, of any account, that have this mailbox selected (IMAP) or open (POP): an array of {Account; Module; Address; Since; Mailbox (the name that session used)}. Another account's mailbox needs CanAccessMailboxes, as GETMAILBOXINFO.", m::get_mailbox_sessions),
        cmd!("KillAccountSessions", [], [], "KillAccountSessions accountName", User,
             "Ends the account's sessions: IMAP clients get `* BYE`, POP clients `-ERR`, and the connections close (POP without deleting anything); a WebMail session ends at its next request. The sessions end within moments of the reply.", ses::kill_account_sessions),
        cmd!("SetTestClock", [], [], "SetTestClock time", Settings,
             "Test only: sets the clock of the TCP Activity Schedule, RPOP polls and the link status to this RFC 3339 time (it runs on from there); works only in a server started with the hidden option --test-clock time.", q::set_test_clock),
    ]},
];

/// Number of commands the guide documents (spec B §0).
pub const GUIDE_COMMANDS: usize = 180;

/// Every command, in table order.
pub fn all() -> impl Iterator<Item = &'static Command> {
    SECTIONS.iter().flat_map(|s| s.commands.iter())
}

/// The command named `name` (its name, a short alias or a legacy name; case-insensitive).
pub fn find(name: &str) -> Option<&'static Command> {
    let eq = |n: &&str| n.eq_ignore_ascii_case(name);
    all()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .or_else(|| all().find(|c| c.aliases.iter().any(eq) || c.legacy.iter().any(eq)))
}

/// The names for command completion: every name and alias.
pub fn names() -> Vec<&'static str> {
    all()
        .flat_map(|c| std::iter::once(c.name).chain(c.aliases.iter().copied()))
        .collect()
}
