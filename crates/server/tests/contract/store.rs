//! The store: items by namespace and key, search by prefix and filter, namespace listing.

use crate::common::{item_search, namespaces_request, ns, obj, t};
use errand_protocol::StoreListNamespacesRequest;
use serde_json::{Value, json};

contract_test! {
    async fn store_items_put_get_replace_delete(storage) {
        let space = ns(&["users", "ann"]);
        assert!(storage.get_item(&space, "prefs").await.unwrap().is_none());
        storage
            .put_item(&space, "prefs", obj(json!({"theme": "dark"})), t(1))
            .await
            .unwrap();
        let item = storage.get_item(&space, "prefs").await.unwrap().unwrap();
        assert_eq!(item.namespace, space);
        assert_eq!(item.key, "prefs");
        assert_eq!(Value::Object(item.value), json!({"theme": "dark"}));
        assert_eq!((item.created_at, item.updated_at), (t(1), t(1)));
        assert!(item.extra.is_empty());

        storage
            .put_item(&space, "prefs", obj(json!({"theme": "light"})), t(2))
            .await
            .unwrap();
        let item = storage.get_item(&space, "prefs").await.unwrap().unwrap();
        assert_eq!(Value::Object(item.value), json!({"theme": "light"}));
        assert_eq!((item.created_at, item.updated_at), (t(1), t(2)));

        // Same key in another namespace is another item.
        assert!(
            storage
                .get_item(&ns(&["users"]), "prefs")
                .await
                .unwrap()
                .is_none()
        );
        assert!(!storage.delete_item(&ns(&["users"]), "prefs").await.unwrap());
        assert!(storage.delete_item(&space, "prefs").await.unwrap());
        assert!(!storage.delete_item(&space, "prefs").await.unwrap());
        assert!(storage.get_item(&space, "prefs").await.unwrap().is_none());
    }
}

contract_test! {
    async fn store_search_matches_whole_labels_filters_and_pages(storage) {
        let put = |labels: &'static [&'static str], key: &'static str, value: Value, at| {
            async move {
                storage
                    .put_item(&ns(labels), key, obj(value), at)
                    .await
                    .unwrap();
            }
        };
        put(&["a"], "k1", json!({"kind": "x", "n": 1}), t(1)).await;
        put(&["a", "b"], "k2", json!({"kind": "y", "n": 2}), t(2)).await;
        put(&["a", "b", "c"], "k3", json!({"kind": "x", "n": 3}), t(3)).await;
        put(&["ab"], "k4", json!({"kind": "x"}), t(4)).await;
        put(&["a\"", "b"], "k5", json!({"kind": "x"}), t(5)).await;
        put(&["a,b"], "k6", json!({"kind": "x"}), t(6)).await;
        put(&[], "k7", json!({"kind": "root"}), t(7)).await;

        let keys = |items: Vec<errand_protocol::StoreItem>| {
            items.into_iter().map(|item| item.key).collect::<Vec<_>>()
        };
        let found = storage
            .search_items(&item_search(Some(&["a"])))
            .await
            .unwrap();
        assert_eq!(
            keys(found),
            vec!["k3", "k2", "k1"],
            "newest first, on label boundaries"
        );
        let found = storage
            .search_items(&item_search(Some(&["a", "b"])))
            .await
            .unwrap();
        assert_eq!(keys(found), vec!["k3", "k2"]);
        let found = storage
            .search_items(&item_search(Some(&["a", "b", "c", "d"])))
            .await
            .unwrap();
        assert!(found.is_empty());
        let found = storage
            .search_items(&item_search(Some(&["a\""])))
            .await
            .unwrap();
        assert_eq!(keys(found), vec!["k5"]);
        let found = storage
            .search_items(&item_search(Some(&["a,b"])))
            .await
            .unwrap();
        assert_eq!(keys(found), vec!["k6"]);
        let found = storage.search_items(&item_search(None)).await.unwrap();
        assert_eq!(keys(found), vec!["k7", "k6", "k5", "k4", "k3", "k2", "k1"]);
        let found = storage.search_items(&item_search(Some(&[]))).await.unwrap();
        assert_eq!(found.len(), 7);

        let mut filtered = item_search(Some(&["a"]));
        filtered.filter = Some(obj(json!({"kind": "x"})));
        assert_eq!(
            keys(storage.search_items(&filtered).await.unwrap()),
            vec!["k3", "k1"]
        );
        filtered.filter = Some(obj(json!({"kind": "x", "n": 1})));
        assert_eq!(
            keys(storage.search_items(&filtered).await.unwrap()),
            vec!["k1"]
        );
        filtered.filter = Some(obj(json!({"missing": 1})));
        assert!(storage.search_items(&filtered).await.unwrap().is_empty());

        let mut paged = item_search(None);
        paged.filter = Some(obj(json!({"kind": "x"})));
        paged.limit = 2;
        paged.offset = 1;
        assert_eq!(
            keys(storage.search_items(&paged).await.unwrap()),
            vec!["k5", "k4"]
        );
        paged.offset = 4;
        assert_eq!(
            keys(storage.search_items(&paged).await.unwrap()),
            vec!["k1"]
        );
        paged.limit = 0;
        assert!(storage.search_items(&paged).await.unwrap().is_empty());

        // Replacing an item moves it to the front.
        put(&["a"], "k1", json!({"kind": "x", "n": 10}), t(10)).await;
        let found = storage
            .search_items(&item_search(Some(&["a"])))
            .await
            .unwrap();
        assert_eq!(keys(found), vec!["k1", "k3", "k2"]);
    }
}

contract_test! {
    async fn store_lists_namespaces(storage) {
        for (labels, key) in [
            (&["users", "ann", "prefs"][..], "a"),
            (&["users", "ann", "prefs"][..], "b"),
            (&["users", "bob", "prefs"][..], "c"),
            (&["users", "bob", "notes"][..], "d"),
            (&["usersx", "x"][..], "e"),
            (&["docs"][..], "f"),
        ] {
            storage
                .put_item(&ns(labels), key, obj(json!({})), t(1))
                .await
                .unwrap();
        }
        let list = |prefix: Option<&[&str]>, suffix: Option<&[&str]>, max_depth: Option<u32>| {
                let request = StoreListNamespacesRequest {
                prefix: prefix.map(ns),
                suffix: suffix.map(ns),
                max_depth,
                ..namespaces_request()
            };
            async move { storage.list_namespaces(&request).await.unwrap().namespaces }
        };
        let all = list(None, None, None).await;
        assert_eq!(
            all,
            vec![
                ns(&["docs"]),
                ns(&["users", "ann", "prefs"]),
                ns(&["users", "bob", "notes"]),
                ns(&["users", "bob", "prefs"]),
                ns(&["usersx", "x"]),
            ]
        );
        assert_eq!(
            list(Some(&["users"]), None, None).await,
            vec![
                ns(&["users", "ann", "prefs"]),
                ns(&["users", "bob", "notes"]),
                ns(&["users", "bob", "prefs"]),
            ]
        );
        assert_eq!(
            list(Some(&["users"]), None, Some(2)).await,
            vec![ns(&["users", "ann"]), ns(&["users", "bob"])]
        );
        assert_eq!(
            list(None, None, Some(1)).await,
            vec![ns(&["docs"]), ns(&["users"]), ns(&["usersx"])]
        );
        assert_eq!(
            list(None, Some(&["prefs"]), None).await,
            vec![
                ns(&["users", "ann", "prefs"]),
                ns(&["users", "bob", "prefs"])
            ]
        );
        assert_eq!(
            list(Some(&["users"]), Some(&["bob", "prefs"]), None).await,
            vec![ns(&["users", "bob", "prefs"])]
        );
        assert_eq!(
            list(None, Some(&["prefs"]), Some(1)).await,
            vec![ns(&["users"])]
        );
        assert!(list(Some(&["nope"]), None, None).await.is_empty());

        let request = StoreListNamespacesRequest {
            limit: 2,
            offset: 1,
            ..namespaces_request()
        };
        assert_eq!(
            storage.list_namespaces(&request).await.unwrap().namespaces,
            all[1..3]
        );
    }
}
